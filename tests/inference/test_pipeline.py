"""Per-frame pipeline with the real detector and embedder."""

from __future__ import annotations

import numpy as np

from inference.image import load_image
from inference.pipeline import FacePipeline, TrackEmbedded, TrackEnded


def test_one_embedding_per_track_then_ended(detector, embedder, lfw):
    """GIVEN the same LFW photo for 5 frames, then 6 empty frames THEN exactly one TrackEmbedded
    (on the second hit), then one TrackEnded after max_missed (5) is exceeded."""
    pipeline = FacePipeline(detector, embedder)
    img = load_image(lfw["Colin_Powell"][0])
    events = []
    for i in range(5):
        events += pipeline.process(img, float(i), {"frame": i})
    embedded = [e for e in events if isinstance(e, TrackEmbedded)]
    assert len(embedded) == 1 and not [e for e in events if isinstance(e, TrackEnded)]
    event = embedded[0]
    assert event.embedding.shape == (128,) and abs(float(np.linalg.norm(event.embedding)) - 1) < 1e-5
    assert 0 < event.quality <= 1 and event.meta in ({"frame": 0}, {"frame": 1})

    # The embedding from the pipeline's RAM crop matches embedding the full frame directly.
    direct = embedder.embed(img, event.box)
    assert float(direct @ event.embedding) > 0.99

    blank = np.zeros_like(img)
    ended = []
    for i in range(5, 11):
        ended += pipeline.process(blank, float(i))
    assert [(e.track_id, e.embedded) for e in ended] == [(event.track_id, True)]
    assert pipeline.timings.median("detect") is not None and len(pipeline.timings.samples["embed"]) == 1


def test_better_frame_triggers_reembed(detector, embedder, lfw):
    """GIVEN a blurred face for 2 frames then the sharp one THEN it is embedded twice."""
    import cv2

    img = load_image(lfw["Tony_Blair"][0])
    blurred = cv2.GaussianBlur(img, (0, 0), 3.0)
    pipeline = FacePipeline(detector, embedder, reembed_gain=1.25)
    events = []
    for i, frame in enumerate([blurred, blurred, img, img]):
        events += pipeline.process(frame, float(i))
    qualities = [e.quality for e in events if isinstance(e, TrackEmbedded)]
    assert len(qualities) == 2 and qualities[1] >= 1.25 * qualities[0]


def test_small_faces_are_not_embedded(detector, embedder, lfw):
    img = load_image(lfw["Tony_Blair"][0])
    pipeline = FacePipeline(detector, embedder, min_face_px=500)
    events = [e for i in range(4) for e in pipeline.process(img, float(i))]
    assert events == []

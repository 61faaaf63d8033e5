"""BlazeFace on real photos: one face per LFW crop, none on the no-face photos."""

from __future__ import annotations

import numpy as np
import pytest

from inference.detector import BlazeFaceDetector, ssd_anchors
from inference.image import load_image


def _all_lfw(lfw):
    return [p for paths in lfw.values() for p in paths]


def test_anchor_counts_match_the_models():
    assert ssd_anchors(128, [8, 16, 16, 16], 2).shape == (896, 2)
    assert ssd_anchors(192, [4], 1).shape == (2304, 2)


def test_lfw_subject_found_in_every_photo(detector, lfw):
    """The subject of an LFW crop is the face over the image centre; the default threshold finds it."""
    found = 0
    for path in _all_lfw(lfw):
        img = load_image(path)
        cy, cx = img.shape[0] / 2, img.shape[1] / 2
        found += any(d.box[0] < cx < d.box[2] and d.box[1] < cy < d.box[3] for d in detector.detect(img))
    assert found == len(_all_lfw(lfw))


def test_lfw_exactly_one_face_of_subject_size(model_store, lfw):
    """GIVEN LFW crops (subject ~100 px; some photos have smaller real faces in the background)
    WHEN detecting with min_face_px=70 THEN >= 95 % give exactly one face.

    Without the size floor 94/100 give exactly one: the 6 others contain real background faces."""
    det = BlazeFaceDetector.from_store(model_store, "short", accelerator="cpu", min_face_px=70)
    paths = _all_lfw(lfw)
    ones = sum(len(det.detect(load_image(p))) == 1 for p in paths)
    assert ones >= 0.95 * len(paths)


def test_no_face_photos_give_no_faces(detector, shared_data):
    paths = sorted((shared_data / "no_face").glob("*.jpg"))
    assert paths
    hits = {p.name: [round(d.score, 2) for d in detector.detect(load_image(p))] for p in paths}
    assert not any(hits.values()), hits


def test_boxes_and_keypoints_are_in_source_pixels(detector, lfw):
    img = load_image(lfw["Colin_Powell"][0])
    # Embed the photo off-centre in a wide black frame: the letterbox must map back exactly.
    canvas = np.zeros((280, 340, 3), np.uint8)
    canvas[20:270, 80:330] = img
    (a,) = [d for d in detector.detect(img) if d.width > 70]
    (b,) = [d for d in detector.detect(canvas) if d.width > 70]
    assert np.allclose(np.array(b.box) - [80, 20, 80, 20], a.box, atol=8)
    assert b.keypoints.shape == (6, 2)
    right_eye, left_eye, nose = b.keypoints[:3]
    assert right_eye[0] < nose[0] < left_eye[0]
    assert b.box[0] < nose[0] < b.box[2] and b.box[1] < nose[1] < b.box[3]


def test_grayscale_and_rgba_frames(detector, lfw):
    img = load_image(lfw["Tony_Blair"][0])
    gray = img.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert detector.detect(gray) and detector.detect(rgba)


def test_full_range_model_detects_too(model_store, lfw):
    det = BlazeFaceDetector.from_store(model_store, "full", accelerator="cpu")
    assert det.detect(load_image(lfw["George_W_Bush"][0]))


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 10, 5)])
def test_bad_frames_raise(detector, shape):
    from inference.errors import ImageError

    with pytest.raises(ImageError):
        detector.detect(np.zeros(shape, np.uint8))

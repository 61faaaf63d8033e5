"""Face mesh geometry and liveness: the head-turning clip, still photos replayed, spoofs, synthetic depth."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageSequence

from inference.image import load_image
from inference.landmarks import FaceGeometry, FaceLandmarker
from inference.liveness import ChallengeResponse, depth_relief

GIF = "video/intel_head-pose-face-detection-female.gif"
FPS = 12.5


@pytest.fixture(scope="module")
def landmarker(model_store):
    return FaceLandmarker.from_store(model_store, accelerator="cpu")


def _geometries(frames, detector, landmarker):
    out = []
    for rgb in frames:
        faces = detector.detect(rgb)
        out.append(landmarker.mesh(rgb, faces[0].box).geometry if faces else None)
    return out


@pytest.fixture(scope="module")
def gif_geometry(shared_data, detector, landmarker):
    with Image.open(shared_data / GIF) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    return _geometries(frames, detector, landmarker)


def test_mesh_yaw_follows_the_head_turn(gif_geometry):
    yaws = [g.yaw for g in gif_geometry if g is not None]
    assert len(yaws) >= 20
    assert min(yaws) < -0.6 and max(yaws) > 0.6  # she turns to both sides
    assert all(g.presence > 0.5 for g in gif_geometry if g is not None)


def test_head_turning_clip_passes_a_turn_challenge(gif_geometry):
    for order in (["turn_left", "turn_right"], ["turn_right", "turn_left"]):
        ch = ChallengeResponse(actions=order)  # type: ignore[arg-type]
        for i, g in enumerate(gif_geometry * 2):  # the GIF loops
            ch.feed(g, i / FPS)
        assert ch.state == "passed", (order, ch.reason)


def test_still_photos_replayed_as_video_fail(shared_data, detector, landmarker):
    photos = ["lfw_original_10id/George_W_Bush/George_W_Bush_0001.jpg", "spoof/silentface_image_F1.jpg",
              "spoof/silentface_image_F2.jpg", "spoof/silentface_image_T1.jpg"]
    for name in photos:
        rgb = load_image(shared_data / name)
        faces = detector.detect(rgb)
        geometry = landmarker.mesh(rgb, faces[0].box).geometry if faces else None
        # Every action is asked of the same frame, repeated for 20 s at 12.5 fps (a replayed still).
        for action in ("blink", "turn_left", "turn_right", "open_mouth"):
            if geometry is not None and action.startswith("turn") and abs(geometry.yaw) >= 0.45:
                continue  # a photo of a turned head satisfies one turn, never both nor a blink
            ch = ChallengeResponse(actions=[action])  # type: ignore[arg-type]
            for i in range(250):
                ch.feed(geometry, i / FPS)
            assert ch.state == "failed", (name, action)
        ch = ChallengeResponse.random(length=3, rng=random.Random(7))
        for i in range(250):
            ch.feed(geometry, i / FPS)
        assert ch.state == "failed" and "not seen within" in ch.reason


def test_blink_and_mouth_from_geometry_sequence():
    open_eyes = FaceGeometry(yaw=0.0, pitch=0.0, eye_open=0.30, mouth_open=0.02, presence=1.0)
    closed = FaceGeometry(yaw=0.0, pitch=0.0, eye_open=0.08, mouth_open=0.02, presence=1.0)
    mouth = FaceGeometry(yaw=0.0, pitch=0.0, eye_open=0.30, mouth_open=0.5, presence=1.0)
    ch = ChallengeResponse(actions=["blink", "open_mouth"])  # type: ignore[arg-type]
    seq = [open_eyes] * 5 + [closed] * 2 + [open_eyes] * 3 + [mouth]
    states = [ch.feed(g, i / FPS) for i, g in enumerate(seq)]
    assert states[-1] == "passed" and states[-2] == "pending"
    # Too slow: the same blink after the time limit fails.
    late = ChallengeResponse(actions=["blink"], step_timeout_s=1.0)  # type: ignore[arg-type]
    for i, g in enumerate([open_eyes] * 20 + [closed, open_eyes]):
        late.feed(g, i / FPS)
    assert late.state == "failed"


def _face_depth(h=240, w=240, dist=600.0, nose=25.0, tilt=(0.0, 0.0)):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = w / 2, h / 2
    depth = dist + tilt[0] * (xs - cx) + tilt[1] * (ys - cy)
    # Head as an ellipsoid cap plus a nose bump: nearer (smaller depth) in the middle.
    r2 = ((xs - cx) / 70) ** 2 + ((ys - cy) / 90) ** 2
    depth -= np.where(r2 < 1, 30 * np.sqrt(np.clip(1 - r2, 0, 1)), 0)
    depth -= nose * np.exp(-(((xs - cx) / 10) ** 2 + ((ys - cy - 5) / 14) ** 2))
    return depth


def test_depth_relief_separates_faces_from_flat_and_tilted_photos():
    box, nose = (50, 30, 190, 210), (120, 125)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.5, size=(240, 240))  # sensor noise, ~1.5 mm at 60 cm
    live = depth_relief(_face_depth() + noise, box, nose)
    assert live.live and live.relief_mm > 20
    flat = np.full((240, 240), 600.0) + noise
    assert not depth_relief(flat, box, nose).live
    ys, xs = np.mgrid[0:240, 0:240]
    tilted = 600 + 0.8 * (xs - 120) + 0.3 * (ys - 120) + noise  # a photo held at an angle
    verdict = depth_relief(tilted, box, nose)
    assert not verdict.live and abs(verdict.relief_mm) < 5
    bent = 600 + 0.004 * (xs - 120) ** 2 + noise  # a print bent around a vertical axis
    assert not depth_relief(bent, box, nose).live
    holes = flat.copy()
    holes[:, :] = 0
    assert not depth_relief(holes, box, nose).live

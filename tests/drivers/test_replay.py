"""The replay camera: stills held then a gap, video files and GIFs, broken files skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drivers.camera import open_camera
from drivers.camera.fake import FakeCamera
from drivers.camera.replay import ReplayCamera
from drivers.errors import CameraError


def _frames(cam):
    out = []
    with cam:
        while (f := cam.read()) is not None:
            out.append(f)
    return out


def test_stills_are_held_then_separated_by_blank_frames(tmp_path):
    person = tmp_path / "alice"
    person.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(person / "a.jpg")
    Image.new("RGB", (64, 48), (10, 200, 10)).save(tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    frames = _frames(ReplayCamera(tmp_path, hold_frames=2, gap_frames=1))
    kinds = [("blank" if f.meta.get("blank") else Path(f.meta["source"]).name, f.meta["label"]) for f in frames]
    # broken.jpg is skipped; a.jpg (in the person folder alice) and b.png are each held 2 frames + 1 gap
    assert kinds == [("a.jpg", "alice"), ("a.jpg", "alice"), ("blank", ""), ("b.png", ""), ("b.png", ""), ("blank", "")]
    assert frames[0].meta["source"].endswith("alice/a.jpg")
    assert frames[2].meta.get("blank") is True
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))


def test_gif_is_read_frame_by_frame(shared_data):
    frames = _frames(open_camera(f"video:{shared_data / 'video/intel_head-pose-face-detection-female.gif'}", pace=False))
    assert len(frames) == 23 and frames[0].image.shape == (270, 480, 3)


def test_mp4_is_read_with_opencv(shared_data):
    cam = open_camera(f"video:{shared_data / 'video/face_recognition_short_hamilton_clip.mp4'}", pace=False)
    with cam:
        first = cam.read()
    assert first is not None and first.image.shape == (360, 640, 3)


def test_missing_sources_and_unknown_schemes_are_clear(tmp_path):
    with pytest.raises(CameraError, match="does not exist"):
        ReplayCamera(tmp_path / "nope").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraError, match="holds no images"):
        ReplayCamera(tmp_path / "empty").open()
    with pytest.raises(CameraError, match="unknown camera uri"):
        open_camera("ftp://camera")


def test_fake_camera_unplug_raises():
    cam = FakeCamera([np.zeros((4, 4, 3), np.uint8)] * 3)
    cam.open()
    assert cam.read() is not None
    cam.unplug()
    with pytest.raises(CameraError, match="unplugged"):
        cam.read()

"""Supervised camera: unplug → degraded → recovery, a stalled source restarted by the watchdog; depth replay."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from drivers.camera import depth as depth_mod
from drivers.camera import open_camera, supervised
from drivers.camera.depth import FakeDepthCamera, NpyDepthReplay, open_depth_camera
from drivers.camera.fake import FakeCamera, pattern_frame
from drivers.camera.supervised import SupervisedCamera
from drivers.errors import CameraError, DriverUnavailableError


@pytest.fixture(autouse=True)
def fast_timing(monkeypatch):
    monkeypatch.setattr(supervised, "STALL_TIMEOUT_S", 0.3)
    monkeypatch.setattr(supervised, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(supervised, "BACKOFF_MAX_S", 0.05)


class States:
    """Records state changes and lets a test wait for one."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, state: str, detail: str) -> None:
        with self._cond:
            self.seen.append(state)
            self._cond.notify_all()

    def wait_for(self, state: str, count: int = 1) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.seen.count(state) >= count, timeout=10)


def _read_in_thread(cam):
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("frame", cam.read()), daemon=True)
    t.start()
    return t, box


def test_unplug_degrades_and_replug_recovers():
    fake = FakeCamera(itertools.repeat(pattern_frame()))
    states = States()
    cam = SupervisedCamera(lambda: fake, on_state=states)
    cam.open()
    assert cam.read() is not None and cam.state == "ok"
    fake.unplug()
    t, box = _read_in_thread(cam)
    assert states.wait_for("degraded")
    assert "reconnecting" in cam.detail or "unplugged" in cam.detail
    fake.replug()
    t.join(10)
    assert box["frame"] is not None and cam.state == "ok" and cam.restarts == 1
    assert states.seen[-1] == "ok"
    cam.close()


def test_stalled_source_is_restarted_by_the_watchdog():
    fake = FakeCamera(itertools.repeat(pattern_frame()))
    states = States()
    cam = SupervisedCamera(lambda: fake, on_state=states)
    cam.open()
    fake.stall()
    frame = cam.read()  # hangs inside the source; the watchdog closes and reopens it
    assert frame is not None and frame.image.shape == (240, 320, 3)
    assert cam.restarts == 1 and fake.open_count == 2
    assert states.seen == ["ok", "degraded", "ok"]
    cam.close()


def test_close_wakes_a_read_waiting_for_the_camera():
    fake = FakeCamera(itertools.repeat(pattern_frame()))
    states = States()
    cam = SupervisedCamera(lambda: fake, on_state=states)
    cam.open()
    fake.unplug()
    t, box = _read_in_thread(cam)
    assert states.wait_for("degraded")
    cam.close()
    t.join(10)
    assert not t.is_alive() and box["frame"] is None


def test_missing_camera_at_start_is_an_error_and_finite_sources_end():
    gone = FakeCamera([])
    gone.unplug()
    with pytest.raises(CameraError):
        SupervisedCamera(lambda: gone).open()
    cam = SupervisedCamera(lambda: FakeCamera([pattern_frame()]))
    cam.open()
    assert cam.read() is not None and cam.read() is None
    cam.close()


def test_live_uris_come_supervised():
    assert isinstance(open_camera("v4l2:/dev/video99"), SupervisedCamera)
    assert not isinstance(open_camera("v4l2:/dev/video99", supervise=False), SupervisedCamera)


def test_npy_depth_replay(tmp_path):
    np.save(tmp_path / "000.npy", np.full((4, 6), 800, np.uint16))
    np.save(tmp_path / "001.npy", np.stack([np.full((4, 6), 0.5, np.float32)] * 2))  # metres, a stack
    (tmp_path / "notes.txt").write_text("ignored")
    with open_depth_camera(f"depth-replay:{tmp_path}") as cam:
        frames = []
        while (f := cam.read()) is not None:
            frames.append(f)
    assert [int(f.depth_mm[0, 0]) for f in frames] == [800, 500, 500]
    assert all(f.depth_mm.dtype == np.uint16 for f in frames) and [f.index for f in frames] == [1, 2, 3]
    np.save(tmp_path / "002.npy", np.zeros((2, 2, 2, 2)))
    with NpyDepthReplay(tmp_path) as cam, pytest.raises(CameraError, match="2-D"):
        while cam.read() is not None:
            pass


def test_depth_uris_and_fake():
    with pytest.raises(DriverUnavailableError, match="pyorbbecsdk"):
        open_depth_camera("depth:/dev/joyedge-depth")
    with pytest.raises(CameraError, match="does not exist"):
        open_depth_camera("depth-replay:/nonexistent").open()
    fake = FakeDepthCamera(64, 48)
    with fake:
        frame = fake.read()
    assert frame is not None and frame.valid_ratio() == 1.0 and frame.depth_mm.min() < 600
    assert depth_mod.DepthFrame(np.zeros((2, 2), np.uint16), 0.0, 1).valid_ratio() == 0.0

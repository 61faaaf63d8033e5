"""Cameras: a small base class, one module per backend, a fake twin, and a URI to pick one."""

from __future__ import annotations

from pathlib import Path

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError, DriverUnavailableError

__all__ = ["CameraSource", "Frame", "open_camera"]


def open_camera(uri: str, *, width: int = 1280, height: int = 720, fps: float = 15.0,
                pace: bool = True, loop: bool = False, supervise: bool = True) -> CameraSource:
    """Build (not open) the camera a URI names.

    `replay:DIR` (stills, one sub-folder per person allowed), `video:FILE` (mp4, GIF),
    `v4l2:/dev/video0` or `v4l2:0`, `picamera2:` (Raspberry Pi camera, needs the `pi` extra).
    `pace=False` replays as fast as frames are read (headless tools); `loop` repeats a replay.
    A live camera (v4l2, picamera2) comes wrapped in a SupervisedCamera (reconnect with backoff,
    stall watchdog) unless `supervise=False`.
    """
    scheme, _, rest = uri.partition(":")
    if scheme in ("replay", "video"):
        from drivers.camera.replay import ReplayCamera

        if not rest:
            raise CameraError(f"camera uri {uri!r} names no file or folder")
        return ReplayCamera(Path(rest), fps=fps if pace else 0.0, loop=loop)
    if scheme == "v4l2":
        from drivers.camera.v4l2 import V4L2Camera

        def v4l2() -> CameraSource:
            return V4L2Camera(rest or "0", width=width, height=height, fps=fps)

        return _supervised(v4l2) if supervise else v4l2()
    if scheme == "picamera2":
        try:
            from drivers.camera.picamera import PiCamera
        except ImportError as err:  # pragma: no cover - only on a Pi without the extra
            raise DriverUnavailableError(
                "picamera2 is not installed: on Raspberry Pi OS run `apt install python3-picamera2` "
                "and `pip install joyedge[pi]`"
            ) from err
        def pi() -> CameraSource:
            return PiCamera(width=width, height=height, fps=fps)

        return _supervised(pi) if supervise else pi()
    raise CameraError(f"unknown camera uri {uri!r}: use replay:DIR, video:FILE, v4l2:DEV or picamera2:")


def _supervised(factory):  # -> SupervisedCamera
    from drivers.camera.supervised import SupervisedCamera

    return SupervisedCamera(factory)

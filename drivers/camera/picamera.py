"""Raspberry Pi camera through picamera2 (libcamera). Imported only when a profile asks for it."""

from __future__ import annotations

import time

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError, DriverUnavailableError


class PiCamera(CameraSource):
    """The CSI camera of a Raspberry Pi, RGB888 at the configured size."""

    name = "picamera2"

    def __init__(self, *, width: int = 1280, height: int = 720, fps: float = 15.0) -> None:
        self.width, self.height, self.fps = width, height, fps
        self._cam = None
        self._index = 0

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as err:
            raise DriverUnavailableError(
                "picamera2 is not installed: `apt install python3-picamera2` on Raspberry Pi OS"
            ) from err
        try:
            cam = Picamera2()
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            cam.start()
        except (RuntimeError, IndexError) as err:
            raise CameraError(f"Raspberry Pi camera could not start: {err}") from err
        self._cam = cam

    def read(self) -> Frame | None:
        if self._cam is None:
            raise CameraError("picamera2 read before open()")
        try:
            # libcamera's "RGB888" is BGR in memory order; flip to RGB.
            image = self._cam.capture_array("main")[:, :, ::-1].copy()
        except RuntimeError as err:
            raise CameraError(f"Raspberry Pi camera stopped: {err}") from err
        self._index += 1
        return Frame(image=image, timestamp=time.monotonic(), index=self._index)

    def close(self) -> None:
        if self._cam is not None:
            self._cam.stop()
            self._cam.close()
            self._cam = None

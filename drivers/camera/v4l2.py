"""USB/CSI cameras through OpenCV's V4L2 backend (a device path or an index)."""

from __future__ import annotations

import logging
import time

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError

_LOG = logging.getLogger(__name__)


class V4L2Camera(CameraSource):
    """A V4L2 device: `/dev/video0` or `0`. Requests MJPG, which USB cameras need for 720p at 15 fps."""

    name = "v4l2"

    def __init__(self, device: str, *, width: int = 1280, height: int = 720, fps: float = 15.0) -> None:
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self._cap = None
        self._index = 0

    def open(self) -> None:
        import cv2

        target: int | str = int(self.device) if self.device.isdigit() else self.device
        cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"cannot open camera {self.device}: check the cable, `ls -l /dev/video*`, and that the "
                "joyedge user is in the video group"
            )
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap

    def read(self) -> Frame | None:
        import cv2

        if self._cap is None:
            raise CameraError(f"camera {self.device} read before open()")
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            raise CameraError(f"camera {self.device} stopped delivering frames (unplugged?)")
        self._index += 1
        return Frame(image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), timestamp=time.monotonic(), index=self._index)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

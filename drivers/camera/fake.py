"""The fake camera twin: frames from memory, for tests and scripted demos.

`unplug()` makes reads and opens fail as a pulled USB cable does, `replug()` undoes it, and
`stall()` makes the next read hang (as a wedged UVC driver does) until the camera is closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError


class FakeCamera(CameraSource):
    """Yields the given images (or (image, meta) pairs), then ends; each `open()` starts over."""

    name = "fake"

    def __init__(self, frames: Iterable[np.ndarray | tuple[np.ndarray, dict[str, Any]]]) -> None:
        self._source = frames
        self._it: Iterator[np.ndarray | tuple[np.ndarray, dict[str, Any]]] | None = None
        self._index = 0
        self.unplugged = False
        self.opened = False
        self.open_count = 0
        self._stalled: threading.Event | None = None

    def open(self) -> None:
        if self.unplugged:
            raise CameraError("fake camera is unplugged")
        self._it = iter(self._source)
        self.opened = True
        self.open_count += 1

    def read(self) -> Frame | None:
        stall = self._stalled
        if stall is not None:
            stall.wait()  # hangs like a wedged driver until close() releases it
            raise CameraError("fake camera was closed while stalled")
        if self.unplugged:
            raise CameraError("fake camera was unplugged")
        if self._it is None:
            raise CameraError("fake camera read before open()")
        item = next(self._it, None)
        if item is None:
            return None
        image, meta = item if isinstance(item, tuple) else (item, {})
        self._index += 1
        return Frame(image=image, timestamp=time.monotonic(), index=self._index, meta=dict(meta))

    def close(self) -> None:
        self.opened = False
        stall, self._stalled = self._stalled, None
        if stall is not None:
            stall.set()

    def unplug(self) -> None:
        """Make the next read fail as a pulled USB cable does."""
        self.unplugged = True

    def replug(self) -> None:
        """The cable is back: the next open succeeds."""
        self.unplugged = False

    def stall(self) -> None:
        """Make the next read hang until `close()`."""
        self._stalled = threading.Event()


def pattern_frame(width: int = 320, height: int = 240) -> np.ndarray:
    """A grey frame with a gradient, so a self-test shows the frame is real pixels."""
    row = np.linspace(0, 255, width, dtype=np.uint8)
    return np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)

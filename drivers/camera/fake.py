"""The fake camera twin: frames from memory, for tests and scripted demos."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError


class FakeCamera(CameraSource):
    """Yields the given images (or (image, meta) pairs) once, then ends; `unplug()` simulates loss."""

    name = "fake"

    def __init__(self, frames: Iterable[np.ndarray | tuple[np.ndarray, dict[str, Any]]]) -> None:
        self._source = frames
        self._it: Iterator[np.ndarray | tuple[np.ndarray, dict[str, Any]]] | None = None
        self._index = 0
        self.unplugged = False
        self.opened = False

    def open(self) -> None:
        if self.unplugged:
            raise CameraError("fake camera is unplugged")
        self._it = iter(self._source)
        self.opened = True

    def read(self) -> Frame | None:
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

    def unplug(self) -> None:
        """Make the next read fail as a pulled USB cable does."""
        self.unplugged = True

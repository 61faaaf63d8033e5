"""The camera interface every backend implements: open, read frames, close.

A frame is RGB uint8 (H, W, 3) with a monotonic timestamp. `meta` carries what a source knows
about the frame (a replay source says which file it came from), so tools can score results
against ground truth without the pipeline knowing about files.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera frame."""

    image: np.ndarray
    timestamp: float
    index: int
    meta: dict[str, Any] = field(default_factory=dict)


class CameraSource(ABC):
    """A source of frames. `read()` returns None when a finite source (a file) has ended."""

    name: str = "camera"

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raises CameraError with what to check."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of a finite source."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice."""

    def __enter__(self) -> CameraSource:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

"""Depth cameras: a frame interface, replay from `.npy` frames, and the fake twin.

A depth frame is uint16 millimetres (H, W), 0 = no measurement, with a monotonic timestamp, as
the structured-light modules of the π-POS flagship (Orbbec Astra/Gemini class) deliver it.

Real backend to add (not built yet: no such camera on the build machines):
  * Orbbec: `pyorbbecsdk` (Orbbec's Python SDK, wheels on their GitHub releases for aarch64):
    `Pipeline()`, `Config().enable_stream(OBSensorType.DEPTH_SENSOR …)`, `wait_for_frames(ms)`,
    `frame.get_depth_frame()` → `np.frombuffer(..., uint16).reshape(h, w) * depth_scale`.
  * Intel RealSense: `pyrealsense2`: `rs.pipeline()`, `rs.config().enable_stream(rs.stream.depth,
    w, h, rs.format.z16, fps)`, `wait_for_frames()`, `get_depth_frame()`, scale by
    `get_depth_scale()` (metres per unit) × 1000.
  Either becomes `drivers/camera/orbbec.py` / `realsense.py` with a `DepthSource` subclass, picked
  by `open_depth_camera("orbbec:…")`; `depth:/dev/…` in the profile then names the module's node.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from drivers.errors import CameraError, DriverUnavailableError


@dataclass(frozen=True)
class DepthFrame:
    """One depth image in millimetres."""

    depth_mm: np.ndarray
    timestamp: float
    index: int
    meta: dict[str, Any] = field(default_factory=dict)

    def valid_ratio(self) -> float:
        """Share of pixels with a measurement (structured light drops out on glass and hair)."""
        return float(np.count_nonzero(self.depth_mm)) / max(1, self.depth_mm.size)


class DepthSource(ABC):
    """A source of depth frames; `read()` returns None at the end of a finite source."""

    name = "depth"

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> DepthFrame | None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> DepthSource:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _as_depth(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise CameraError(f"{where}: a depth frame must be a 2-D numeric array, got {arr.dtype} {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):  # metres, as some SDK dumps store it
        arr = np.nan_to_num(arr * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(arr, 0, 65535).astype(np.uint16)


class NpyDepthReplay(DepthSource):
    """`.npy` frames: a folder of (H, W) files in name order, or one (N, H, W) stack."""

    name = "depth-replay"

    def __init__(self, source: Path, *, loop: bool = False) -> None:
        self.source = Path(source)
        self.loop = loop
        self._it: Iterator[tuple[np.ndarray, str]] | None = None
        self._index = 0

    def _files(self) -> list[Path]:
        if self.source.is_dir():
            return sorted(self.source.glob("*.npy"))
        return [self.source] if self.source.suffix == ".npy" and self.source.is_file() else []

    def open(self) -> None:
        if not self.source.exists():
            raise CameraError(f"depth replay {self.source} does not exist")
        if not self._files():
            raise CameraError(f"depth replay {self.source} holds no .npy frames")
        self._it = self._frames()

    def _one_pass(self) -> Iterator[tuple[np.ndarray, str]]:
        for path in self._files():
            try:
                arr = np.load(path, allow_pickle=False)  # never unpickle a file from a USB stick
            except (OSError, ValueError) as err:
                raise CameraError(f"depth replay: cannot read {path}: {err}") from err
            if arr.ndim == 3:
                for i in range(arr.shape[0]):
                    yield _as_depth(arr[i], str(path)), f"{path}[{i}]"
            else:
                yield _as_depth(arr, str(path)), str(path)

    def _frames(self) -> Iterator[tuple[np.ndarray, str]]:
        while True:
            yield from self._one_pass()
            if not self.loop:
                return

    def read(self) -> DepthFrame | None:
        if self._it is None:
            raise CameraError("depth replay read before open()")
        item = next(self._it, None)
        if item is None:
            return None
        self._index += 1
        return DepthFrame(item[0], time.monotonic(), self._index, {"source": item[1]})

    def close(self) -> None:
        self._it = None


class FakeDepthCamera(DepthSource):
    """A flat wall with a face-sized bump at `distance_mm`; `unplug()` simulates loss."""

    name = "fake-depth"

    def __init__(self, width: int = 640, height: int = 480, distance_mm: int = 600) -> None:
        self.width, self.height, self.distance_mm = width, height, distance_mm
        self.plugged = True
        self._open = False
        self._index = 0

    def unplug(self) -> None:
        """Reads and opens fail until `replug()`."""
        self.plugged = False

    def replug(self) -> None:
        """Back again."""
        self.plugged = True

    def open(self) -> None:
        if not self.plugged:
            raise CameraError("fake depth camera is unplugged")
        self._open = True

    def read(self) -> DepthFrame | None:
        if not self.plugged:
            raise CameraError("fake depth camera was unplugged")
        if not self._open:
            raise CameraError("fake depth camera read before open()")
        yy, xx = np.mgrid[0 : self.height, 0 : self.width]
        r2 = ((xx - self.width / 2) ** 2 + (yy - self.height / 2) ** 2) / (min(self.width, self.height) / 4) ** 2
        depth = np.where(r2 < 1, self.distance_mm - 60 * (1 - r2), 2500).astype(np.uint16)
        self._index += 1
        return DepthFrame(depth, time.monotonic(), self._index)

    def close(self) -> None:
        self._open = False


def open_depth_camera(uri: str, *, width: int = 640, height: int = 480, loop: bool = False) -> DepthSource:
    """`depth-replay:DIR|FILE.npy`, `fake-depth:`; `depth:`/`orbbec:`/`realsense:` need a backend not built yet."""
    scheme, _, rest = uri.partition(":")
    if scheme == "depth-replay":
        if not rest:
            raise CameraError(f"depth uri {uri!r} names no folder or .npy file")
        return NpyDepthReplay(Path(rest), loop=loop)
    if scheme == "fake-depth":
        return FakeDepthCamera(width, height)
    if scheme in ("depth", "orbbec", "realsense"):
        raise DriverUnavailableError(
            f"depth camera {uri!r}: no Orbbec/RealSense backend is installed in this build "
            "(see drivers/camera/depth.py for the SDKs: pyorbbecsdk or pyrealsense2)"
        )
    raise CameraError(f"unknown depth camera uri {uri!r}: use depth-replay:PATH, fake-depth: or depth:DEV")

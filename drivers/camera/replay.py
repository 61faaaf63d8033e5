"""Replay camera: a folder of stills or a video file (mp4 via OpenCV, GIF via Pillow) as frames.

Stills are shown for `hold_frames` frames each, followed by `gap_frames` empty frames: a person
walks up, stays a moment, and leaves before the next one arrives. Without the gap a tracker
would see two centred faces in a row as one person, which no real camera shows it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError

_LOG = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".gif")
BLANK_GREY = 96


def list_stills(folder: Path) -> list[tuple[Path, str]]:
    """(file, label) for every image in `folder`, one level of sub-folders deep, sorted.

    The label is the sub-folder's name (a person) or "" for files at the top.
    """
    if not folder.is_dir():
        raise CameraError(f"replay folder {folder} does not exist")
    out: list[tuple[Path, str]] = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            out.extend((f, entry.name) for f in sorted(entry.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            out.append((entry, ""))
    return out


def decode_still(path: Path) -> np.ndarray | None:
    """RGB uint8 pixels of an image file, or None (logged) when it cannot be decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        _LOG.warning("replay: skipping %s: %s", path, err)
        return None


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    if path.suffix.lower() == ".gif":
        from PIL import Image, ImageSequence

        try:
            with Image.open(path) as im:
                for f in ImageSequence.Iterator(im):
                    yield np.asarray(f.convert("RGB"))
        except OSError as err:
            raise CameraError(f"cannot read GIF {path}: {err}") from err
        return
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CameraError(f"cannot open video {path}: not a video OpenCV can decode")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


class ReplayCamera(CameraSource):
    """Frames from stills, a video file or images in memory, optionally paced and looped."""

    name = "replay"

    def __init__(
        self,
        source: Path | Sequence[tuple[np.ndarray, dict[str, Any]]],
        *,
        fps: float = 0.0,
        hold_frames: int = 4,
        gap_frames: int = 3,
        loop: bool = False,
    ) -> None:
        self.source = source
        self.fps = fps
        self.hold_frames = max(1, hold_frames)
        self.gap_frames = max(0, gap_frames)
        self.loop = loop
        self._it: Iterator[tuple[np.ndarray, dict[str, Any]]] | None = None
        self._index = 0
        self._next_due = 0.0

    def open(self) -> None:
        if isinstance(self.source, Path):
            if self.source.is_dir():
                if not list_stills(self.source):
                    raise CameraError(f"replay folder {self.source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            elif not self.source.is_file():
                raise CameraError(f"replay source {self.source} does not exist")
            elif self.source.suffix.lower() not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
                raise CameraError(f"replay source {self.source}: unsupported file type {self.source.suffix}")
        self._it = self._frames()
        self._next_due = time.monotonic()

    def _stills(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        assert isinstance(self.source, Path)
        for path, label in list_stills(self.source):
            image = decode_still(path)
            if image is not None:
                yield image, {"source": str(path), "label": label}

    def _one_pass(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        if isinstance(self.source, Path) and self.source.is_file():
            if self.source.suffix.lower() in IMAGE_SUFFIXES:
                image = decode_still(self.source)
                if image is not None:
                    yield from self._held(image, {"source": str(self.source), "label": ""})
                return
            for i, image in enumerate(_video_frames(self.source)):
                yield image, {"source": str(self.source), "label": "", "frame": i}
            return
        stills = self._stills() if isinstance(self.source, Path) else iter(self.source)
        for image, meta in stills:
            yield from self._held(image, meta)

    def _held(self, image: np.ndarray, meta: dict[str, Any]) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        for _ in range(self.hold_frames):
            yield image, meta
        if self.gap_frames:
            blank = np.full_like(image, BLANK_GREY)
            for _ in range(self.gap_frames):
                yield blank, {"source": "", "label": "", "blank": True}

    def _frames(self) -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
        while True:
            produced = False
            for item in self._one_pass():
                produced = True
                yield item
            if not self.loop or not produced:
                return

    def read(self) -> Frame | None:
        if self._it is None:
            raise CameraError("replay camera read before open()")
        item = next(self._it, None)
        if item is None:
            return None
        if self.fps > 0:
            # Pace like a real sensor: a frame every 1/fps s, never bursting to catch up.
            now = time.monotonic()
            if self._next_due > now:
                time.sleep(self._next_due - now)
            self._next_due = max(now, self._next_due) + 1.0 / self.fps
        self._index += 1
        image, meta = item
        return Frame(image=image, timestamp=time.monotonic(), index=self._index, meta=meta)

    def close(self) -> None:
        self._it = None

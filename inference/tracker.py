"""Greedy IoU tracker: gives each face a stable id across frames so it is embedded once, not per frame."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Box = tuple[float, float, float, float]


class HasBox(Protocol):
    """Anything with a ``box`` (x0, y0, x1, y1), e.g. a :class:`~inference.detector.Detection`."""

    box: Box


@dataclass
class Track:
    """One face followed across frames. ``detection`` is the latest matched detection."""

    id: int
    box: Box
    last_seen: float
    hits: int = 1
    missed: int = 0
    best_quality: float = 0.0
    detection: HasBox | None = field(default=None, repr=False)


def iou_matrix(a: Sequence[Box], b: Sequence[Box]) -> np.ndarray:
    """Pairwise IoU of two box lists, shape (len(a), len(b))."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    aa, bb = np.asarray(a, dtype=np.float64)[:, None, :], np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.clip(np.minimum(aa[..., 2], bb[..., 2]) - np.maximum(aa[..., 0], bb[..., 0]), 0, None)
    ih = np.clip(np.minimum(aa[..., 3], bb[..., 3]) - np.maximum(aa[..., 1], bb[..., 1]), 0, None)
    inter = iw * ih
    area_a = (aa[..., 2] - aa[..., 0]) * (aa[..., 3] - aa[..., 1])
    area_b = (bb[..., 2] - bb[..., 0]) * (bb[..., 3] - bb[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


class Tracker:
    """Match detections to tracks greedily by descending IoU; drop a track after ``max_missed`` misses."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        """A match needs IoU >= ``iou_threshold``; a track ends when missed more than ``max_missed`` frames."""
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._tracks: list[Track] = []
        self._ended: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """Every live track, visible or currently missed."""
        return list(self._tracks)

    def update(self, detections: Sequence[HasBox], timestamp: float) -> list[Track]:
        """Feed one frame's detections; returns the tracks visible in this frame (matched or new)."""
        ious = iou_matrix([t.box for t in self._tracks], [d.box for d in detections])
        pairs = sorted(
            ((ious[i, j], i, j) for i in range(ious.shape[0]) for j in range(ious.shape[1])
             if ious[i, j] >= self.iou_threshold),
            reverse=True,
        )
        used_t: set[int] = set()
        used_d: set[int] = set()
        visible: list[Track] = []
        for _, i, j in pairs:
            if i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            track, det = self._tracks[i], detections[j]
            track.box, track.detection, track.last_seen = tuple(det.box), det, timestamp
            track.hits += 1
            track.missed = 0
            visible.append(track)
        survivors = []
        for i, track in enumerate(self._tracks):
            if i not in used_t:
                track.missed += 1
                if track.missed > self.max_missed:
                    self._ended.append(track)
                    continue
            survivors.append(track)
        for j, det in enumerate(detections):
            if j not in used_d:
                track = Track(id=self._next_id, box=tuple(det.box), last_seen=timestamp, detection=det)
                self._next_id += 1
                survivors.append(track)
                visible.append(track)
        self._tracks = survivors
        visible.sort(key=lambda t: t.id)
        return visible

    def ended(self) -> list[Track]:
        """Tracks dropped since the last call."""
        out, self._ended = self._ended, []
        return out

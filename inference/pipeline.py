"""The per-frame pipeline: detect every frame, track, embed once per track on its best frame.

The embedding is the expensive stage, so a track is embedded when it has been seen
``min_hits_before_embed`` times, from the best-quality frame seen so far (a crop of it is kept in RAM,
never written to disk), and re-embedded only when a later frame is clearly better.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from inference.detector import Detection, as_rgb
from inference.quality import face_quality
from inference.tracker import Track, Tracker

# How many recent samples each timing stage keeps.
TIMING_WINDOW = 500
# The kept crop extends the face box by this fraction of its size on each side, so that the 5-point
# predictor and the 0.25-padded face chip have the context they need.
CROP_CONTEXT = 0.5
DEFAULT_MIN_HITS_BEFORE_EMBED = 2
DEFAULT_REEMBED_GAIN = 1.25
DEFAULT_MAX_EMBEDS_PER_TRACK = 3
DEFAULT_MIN_FACE_PX = 40


class Detector(Protocol):
    """What the pipeline needs of a detector (:class:`~inference.detector.BlazeFaceDetector`)."""

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


class Embedder(Protocol):
    """What the pipeline needs of an embedder (:class:`~inference.embedder.FaceEmbedder`)."""

    def embed(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class TrackEmbedded:
    """A track's face was embedded; ``box``, ``meta`` and ``timestamp`` are those of the frame used."""

    track_id: int
    embedding: np.ndarray
    quality: float
    box: tuple[float, float, float, float]
    meta: Mapping | None
    timestamp: float


@dataclass(frozen=True)
class TrackEnded:
    """A track was dropped by the tracker; ``embedded`` says whether it was ever embedded."""

    track_id: int
    embedded: bool
    meta: Mapping | None
    timestamp: float


PipelineEvent = TrackEmbedded | TrackEnded


@dataclass
class StageTimings:
    """Recent per-stage durations in milliseconds."""

    samples: dict[str, deque[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        """Record one duration for ``stage``."""
        self.samples.setdefault(stage, deque(maxlen=TIMING_WINDOW)).append(ms)

    def median(self, stage: str) -> float | None:
        """Median ms of ``stage`` over the window, None before the first sample."""
        values = self.samples.get(stage)
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, float]:
        """Median ms of every stage seen so far."""
        return {stage: statistics.median(v) for stage, v in self.samples.items() if v}


@dataclass
class _Best:
    """The best frame of a track so far: a crop around the face (RAM only) and the box inside it."""

    quality: float
    crop: np.ndarray
    box_in_crop: tuple[float, float, float, float]
    box: tuple[float, float, float, float]
    meta: Mapping | None
    timestamp: float


@dataclass
class _TrackState:
    best: _Best | None = None
    embedded_quality: float | None = None
    embeds: int = 0


def _crop_context(rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple]:
    """Copy of the face region plus CROP_CONTEXT margin, and the box in crop coordinates."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * CROP_CONTEXT, (y1 - y0) * CROP_CONTEXT
    cx0, cy0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
    cx1, cy1 = min(w, int(np.ceil(x1 + mx))), min(h, int(np.ceil(y1 + my)))
    crop = np.array(rgb[cy0:cy1, cx0:cx1], copy=True)
    return crop, (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0)


class FacePipeline:
    """Detect → track → embed once per track. Not thread-safe: feed it from one thread."""

    def __init__(
        self,
        detector: Detector,
        embedder: Embedder,
        *,
        min_hits_before_embed: int = DEFAULT_MIN_HITS_BEFORE_EMBED,
        reembed_gain: float = DEFAULT_REEMBED_GAIN,
        max_embeds_per_track: int = DEFAULT_MAX_EMBEDS_PER_TRACK,
        min_face_px: float = DEFAULT_MIN_FACE_PX,
        tracker: Tracker | None = None,
    ) -> None:
        """Wire a detector and an embedder; see the module docstring for when embeddings happen."""
        self.detector = detector
        self.embedder = embedder
        self.min_hits_before_embed = min_hits_before_embed
        self.reembed_gain = reembed_gain
        self.max_embeds_per_track = max_embeds_per_track
        self.min_face_px = min_face_px
        self.tracker = tracker or Tracker()
        self.timings = StageTimings()
        self._state: dict[int, _TrackState] = {}

    def process(self, rgb: np.ndarray, timestamp: float, meta: Mapping | None = None) -> list[PipelineEvent]:
        """Run one frame; returns the events it caused (embeddings first, then ended tracks)."""
        rgb = as_rgb(rgb)
        t0 = time.perf_counter()
        detections = self.detector.detect(rgb)
        t1 = time.perf_counter()
        visible = self.tracker.update(detections, timestamp)
        self.timings.add("detect", (t1 - t0) * 1000.0)
        self.timings.add("track", (time.perf_counter() - t1) * 1000.0)
        events: list[PipelineEvent] = []
        for track in visible:
            event = self._consider(track, rgb, timestamp, meta)
            if event is not None:
                events.append(event)
        for track in self.tracker.ended():
            state = self._state.pop(track.id, _TrackState())
            events.append(TrackEnded(track.id, state.embeds > 0, meta, timestamp))
        return events

    def _consider(
        self, track: Track, rgb: np.ndarray, timestamp: float, meta: Mapping | None
    ) -> TrackEmbedded | None:
        det = track.detection
        if not isinstance(det, Detection):
            return None
        state = self._state.setdefault(track.id, _TrackState())
        big_enough = min(det.width, det.height) >= self.min_face_px
        quality = face_quality(rgb, det) if big_enough else 0.0
        track.best_quality = max(track.best_quality, quality)
        if big_enough and (state.best is None or quality > state.best.quality):
            crop, box_in_crop = _crop_context(rgb, det.box)
            state.best = _Best(quality, crop, box_in_crop, det.box, meta, timestamp)
        if state.best is None or track.hits < self.min_hits_before_embed:
            return None
        if state.embedded_quality is None:
            return self._embed(track.id, state)
        if (
            state.embeds < self.max_embeds_per_track
            and state.best.quality >= state.embedded_quality * self.reembed_gain
            and state.best.quality > state.embedded_quality
        ):
            return self._embed(track.id, state)
        return None

    def _embed(self, track_id: int, state: _TrackState) -> TrackEmbedded:
        best = state.best
        assert best is not None
        t0 = time.perf_counter()
        embedding = self.embedder.embed(best.crop, best.box_in_crop)
        self.timings.add("embed", (time.perf_counter() - t0) * 1000.0)
        state.embedded_quality = best.quality
        state.embeds += 1
        return TrackEmbedded(track_id, embedding, best.quality, best.box, best.meta, best.timestamp)

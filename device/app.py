"""The mirror application loop: camera → face pipeline → identification → mirror view model.

A capture thread reads the camera into a small queue; the caller's thread runs inference, so a
slow embedding never stalls frame capture and the UI server (its own threads) never waits on
inference. With a live camera the queue drops the oldest frame (show the present, not a
backlog); with an unpaced replay it blocks instead, so a recorded clip is processed completely.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from device.gallery import Gallery
from device.greeting import attract_view, member_view, welcome_view
from device.identity import Identifier, TrackVotes
from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError
from sync.errors import SyncError
from sync.outbox import Outbox
from sync.replica import Replica

_LOG = logging.getLogger(__name__)

QUEUE_FRAMES = 2
RELOAD_CHECK_S = 1.0
ATTRACT_AFTER_S = 3.0
_END = object()


@dataclass(frozen=True)
class TrackResult:
    """What happened to one face track, reported when the track ends (or the run stops)."""

    track_id: int
    member_id: str | None
    score: float
    embedded: bool
    meta: dict[str, Any]


@dataclass
class RunStats:
    """Counters and per-stage latencies of one run."""

    frames: int = 0
    latency_ms: dict[str, list[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        """Record one latency sample."""
        self.latency_ms.setdefault(stage, []).append(ms)

    def medians(self) -> dict[str, float]:
        """Median per stage, rounded to 0.1 ms."""
        return {k: round(statistics.median(v), 1) for k, v in self.latency_ms.items() if v}


class MirrorApp:
    """One mirror: owns the per-track identification state and publishes the mirror view."""

    def __init__(
        self,
        *,
        camera: CameraSource,
        pipeline: Any,
        replica: Replica,
        identifier: Identifier,
        store_id: str,
        timezone: tzinfo | None,
        publish: Callable[[str, dict[str, Any]], None],
        on_result: Callable[[TrackResult], None] | None = None,
        paced: bool = True,
    ) -> None:
        self.camera = camera
        self.pipeline = pipeline
        self.replica = replica
        self.identifier = identifier
        self.gallery: Gallery = identifier.gallery
        self.store_id = store_id
        self.tz = timezone
        self.publish = publish
        self.on_result = on_result
        self.paced = paced
        self.stats = RunStats()
        self._votes: dict[int, TrackVotes] = {}
        self._meta: dict[int, dict[str, Any]] = {}
        self._greeted: dict[int, str | None] = {}
        self._data_version = -1
        self._gallery_rev: int | None = None
        self.outbox = Outbox(replica)
        self._last_reload_check = 0.0
        self._last_face = time.monotonic()
        self._showing = ""

    # -- gallery -----------------------------------------------------------------------------

    def reload_gallery_if_changed(self, force: bool = False) -> bool:
        """Merge template changes when the sync daemon committed since the last look (all of them on `force`).

        `PRAGMA data_version` tells cheaply that another connection committed; the replica's template
        revision then says which templates changed, and only those are decrypted and merged.
        """
        version = self.replica.data_version()
        if not force and version == self._data_version:
            return False
        self._data_version = version
        before = self._gallery_rev
        self._gallery_rev = self.gallery.refresh_from(self.replica, None if force else self._gallery_rev)
        if force or self._gallery_rev != before:
            _LOG.info("gallery: %d members, %d templates (rev %d)", len(self.gallery),
                      self.gallery.template_count, self._gallery_rev)
        return True

    # -- the loop ----------------------------------------------------------------------------

    def _capture(self, frames: queue.Queue, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                frame = self.camera.read()
                if frame is None:
                    break
                if self.paced:
                    while True:
                        try:
                            frames.put_nowait(frame)
                            break
                        except queue.Full:
                            try:
                                frames.get_nowait()  # drop the stale frame, keep the fresh one
                            except queue.Empty:
                                pass
                else:
                    while not stop.is_set():
                        try:
                            frames.put(frame, timeout=0.2)
                            break
                        except queue.Full:
                            continue
        except CameraError as err:
            _LOG.error("camera: %s", err)
        finally:
            while True:
                try:
                    frames.put(_END, timeout=0.2)
                    break
                except queue.Full:
                    if stop.is_set():
                        break

    def run(self, stop: threading.Event) -> RunStats:
        """Process frames until the camera ends or `stop` is set; returns the run's stats."""
        self.reload_gallery_if_changed(force=True)
        self.publish("mirror", attract_view())
        self._showing = "attract"
        frames: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.camera.open()
        halt = threading.Event()  # ends capture however this loop ends, even by an exception
        capture = threading.Thread(target=self._capture, args=(frames, halt), name="camera-capture", daemon=True)
        capture.start()
        try:
            while not stop.is_set():
                try:
                    item = frames.get(timeout=0.2)
                except queue.Empty:
                    self._idle()
                    continue
                if item is _END:
                    break
                self.process_frame(item)
        finally:
            halt.set()
            capture.join(timeout=2.0)
            self.camera.close()
            self._flush_tracks()
        return self.stats

    def _idle(self) -> None:
        now = time.monotonic()
        if now - self._last_reload_check >= RELOAD_CHECK_S:
            self._last_reload_check = now
            self.reload_gallery_if_changed()
        if not self._votes and self._showing != "attract" and now - self._last_face >= ATTRACT_AFTER_S:
            self.publish("mirror", attract_view())
            self._showing = "attract"

    def process_frame(self, frame: Frame) -> None:
        """Run one frame through the pipeline and act on its events."""
        from inference.pipeline import TrackEmbedded, TrackEnded

        t0 = time.perf_counter()
        events = self.pipeline.process(frame.image, frame.timestamp, frame.meta)
        self.stats.add("pipeline", (time.perf_counter() - t0) * 1000)
        self.stats.frames += 1
        for event in events:
            if isinstance(event, TrackEmbedded):
                self._on_embedding(event)
            elif isinstance(event, TrackEnded):
                self._on_track_end(event.track_id, event.embedded, event.meta)
        if self._votes:
            self._last_face = time.monotonic()
        self._idle()

    def _on_embedding(self, event: Any) -> None:
        t0 = time.perf_counter()
        decision = self.identifier.decide(event.embedding)
        self.stats.add("match", (time.perf_counter() - t0) * 1000)
        votes = self._votes.setdefault(event.track_id, TrackVotes())
        votes.add(decision)
        self._meta[event.track_id] = dict(event.meta or {})
        verdict = votes.verdict()
        already = self._greeted.get(event.track_id, "unset")
        if verdict is not None and already != verdict:
            view = member_view(self.replica, verdict, self.store_id, self._now())
            if view is not None:
                _LOG.info("track %d: member %s (score %.3f)", event.track_id, verdict, decision.score)
                self._record_visit(verdict, decision.score)
                self._greeted[event.track_id] = verdict
                self.publish("mirror", view)
                self._showing = "member"
                return
        if already == "unset":
            self._greeted[event.track_id] = None
            if self._showing != "member":
                self.publish("mirror", welcome_view(self._now()))
                self._showing = "welcome"

    def _record_visit(self, member_id: str, score: float) -> None:
        # The visit and its outbox row commit together (Outbox.visit); a full disk costs the visit
        # record, never the greeting.
        try:
            self.outbox.visit(member_id, self.store_id, float(score))
        except SyncError as err:
            _LOG.error("visit of %s not recorded: %s", member_id, err)

    def _on_track_end(self, track_id: int, embedded: bool, meta: dict[str, Any] | None) -> None:
        votes = self._votes.pop(track_id, None)
        member = self._greeted.pop(track_id, None)
        best_meta = self._meta.pop(track_id, dict(meta or {}))
        if votes is not None and member is not None and votes.verdict() != member:
            member = None  # a later embedding contradicted the first: do not count it as that member
        if self.on_result is not None and (embedded or votes is not None):
            self.on_result(TrackResult(track_id, member, votes.best_score if votes else 0.0, True, best_meta))
        if not self._votes:
            self._last_face = time.monotonic()
            if self._showing == "member":
                self._showing = "member-leaving"

    def _flush_tracks(self) -> None:
        for track_id in list(self._votes):
            self._on_track_end(track_id, True, None)

    def _now(self) -> datetime:
        return datetime.now(self.tz)

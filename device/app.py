"""The mirror application loop: camera → face pipeline → identification → mirror view model.

A capture thread reads the camera into a small queue; the caller's thread runs inference, so a
slow embedding never stalls frame capture and the UI server (its own threads) never waits on
inference. With a live camera the queue drops the oldest frame (show the present, not a
backlog); with an unpaced replay it blocks instead, so a recorded clip is processed completely.

Touch actions from the page (find my car, not me, enrollment taps) arrive on the kiosk server's HTTP
threads and are only queued there; this loop takes them between frames, so every state change of
the mirror happens on one thread. Car lookups wait for the cloud on their own worker thread.
The `offline` flag of every model comes from the sync status the daemon stores in the replica; the
`degraded` line from the peripheral supervisor (`set_degraded`, any thread). The loop itself pings
systemd's watchdog (sync.notify.Watchdog), so a wedged inference loop gets the process restarted.
"""

from __future__ import annotations

import itertools
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
from device.greeting import attract_view, member_view, time_greeting_en, welcome_view
from device.identity import Decision, Identifier, TrackVotes
from device.mirror.actions import TouchActions
from device.mirror.confirm import CONFIRM_COUNTERS, PhoneConfirm
from device.mirror.content import choose
from device.mirror.enrollment import EnrollmentFlow, member_codes
from device.mirror.features import MirrorFeatures, ShopperAttributes
from device.mirror.find_car import LookupWorker
from device.mirror.traffic import TrafficAggregator
from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError
from sync.errors import SyncError
from sync.notify import Watchdog
from sync.outbox import Outbox, read_status
from sync.replica import Replica

_LOG = logging.getLogger(__name__)

QUEUE_FRAMES = 2
RELOAD_CHECK_S = 1.0
ATTRACT_AFTER_S = 3.0
RESULT_SHOW_S = 8.0  # an enrollment outcome (done, withdrawn) stays this long, then the attract loop
OFFLINE_AFTER_S = 60.0  # no successful sync call for this long counts as offline (the daemon may be dead)
_END = object()


def is_offline(status: dict[str, Any], now: float) -> bool:
    """Offline by the sync daemon's stored status: it says offline/error, it never reported, or it went quiet."""
    state = status.get("state")
    if state in (None, "offline", "error"):
        return True
    last = status.get("last_success")
    return state != "starting" and (last is None or now - float(last) > OFFLINE_AFTER_S)


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
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONFIRM_COUNTERS, 0))

    def count(self, name: str) -> None:
        """Count one event (e.g. "confirm_asked")."""
        self.counts[name] = self.counts.get(name, 0) + 1

    def add(self, stage: str, ms: float) -> None:
        """Record one latency sample."""
        self.latency_ms.setdefault(stage, []).append(ms)

    def medians(self) -> dict[str, float]:
        """Median per stage, rounded to 0.1 ms."""
        return {k: round(statistics.median(v), 1) for k, v in self.latency_ms.items() if v}


class MirrorApp(TouchActions, PhoneConfirm):
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
        features: MirrorFeatures | None = None,
        on_action: Callable[[str, Callable[[dict[str, Any]], None]], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``features``: the mirror extras (enrollment, car finder, content, traffic); ``on_action``: the kiosk
        server's ``on_action`` (touch input); ``clock``: wall-clock seconds for traffic windows."""
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
        self.features = features or MirrorFeatures()
        self.clock = clock
        self._actions: queue.Queue[dict[str, Any]] = queue.Queue()
        self._unsubscribe = on_action("mirror", self._actions.put) if on_action is not None else None
        self.traffic = self.features.traffic or TrafficAggregator(self.outbox, store_id)
        self.enrollment = self.features.enrollment
        if self.enrollment is None and self.features.landmarker is not None:
            self.enrollment = EnrollmentFlow(
                replica=replica, outbox=self.outbox, detector=pipeline.detector, landmarker=self.features.landmarker,
                embedder=pipeline.embedder, identifier=identifier, member_codes=self.features.member_codes,
                on_gallery_change=lambda: self.reload_gallery_if_changed(force=True))
        self._view: dict[str, Any] = attract_view()
        self._offline = False
        self._last_status_check = -RELOAD_CHECK_S
        self._cards = itertools.count(1)
        self._card: dict[str, Any] | None = None  # the member card on the glass: id, member, decision, track
        self._shoppers: dict[int, ShopperAttributes] = {}
        self._track_started_ms: dict[int, int] = {}
        self._refused: set[int] = set()  # tracks whose shopper said "not me"
        self._accepted: dict[int, Decision] = {}  # the latest accepted decision per track
        self._init_confirm()  # the phone-digits keypad for matches under the greeting threshold
        self._result_since: float | None = None
        self._lookup: LookupWorker | None = None
        self._degraded = ""  # the supervisor's line ("呼叫按钮未连接 · 请检查USB线"), "" when all is well
        self._degraded_changed = threading.Event()
        self.watchdog = Watchdog()

    def set_degraded(self, text: str) -> None:
        """Peripheral health changed (any thread): the loop re-publishes the glass with it."""
        self._degraded = text
        self._degraded_changed.set()

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
        self._check_status(force=True)
        self._show(attract_view(), "attract")
        frames: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self._lookup = LookupWorker(self.features.car_finder,
                                    lambda key, result: self._actions.put({"action": "_car", "card": key, "result": result}))
        self.camera.open()
        halt = threading.Event()  # ends capture however this loop ends, even by an exception
        capture = threading.Thread(target=self._capture, args=(frames, halt), name="camera-capture", daemon=True)
        capture.start()
        self.watchdog.ready()
        try:
            while not stop.is_set():
                self.watchdog.ping()
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
            self._lookup.stop()
            self.traffic.flush_all()
            if self._unsubscribe is not None:
                self._unsubscribe()
            _LOG.info("run: %d frames; %s", self.stats.frames, " ".join(f"{k}={v}" for k, v in self.stats.counts.items()))
        return self.stats

    def _idle(self) -> None:
        self._drain_actions()
        if self._degraded_changed.is_set():
            self._degraded_changed.clear()
            self._show(self._view)
        now = time.monotonic()
        if now - self._last_reload_check >= RELOAD_CHECK_S:
            self._last_reload_check = now
            self.reload_gallery_if_changed()
            self._check_status()
            self.traffic.flush_due(int(self.clock() * 1000))
        if self.enrollment is not None and self.enrollment.active:
            for code in member_codes(self.features.scanner):
                before = self.enrollment.message
                if self.enrollment.on_code(code) or self.enrollment.message != before:  # refusals are shown too
                    self._show_enroll()
            if self._result_since is not None and now - self._result_since >= RESULT_SHOW_S:
                self.enrollment.cancel()
                self._show(attract_view(), "attract")
            return
        if not self._votes and self._showing != "attract" and now - self._last_face >= ATTRACT_AFTER_S:
            self._card = self._confirm = None
            self._show(attract_view(), "attract")

    # -- what the glass shows ----------------------------------------------------------------------

    def _show(self, view: dict[str, Any], showing: str | None = None) -> None:
        """Publish ``view`` with the offline flag and the device name; remember it for re-publishing."""
        self._view = view
        if showing is not None:
            self._showing = showing
        model = dict(view)
        if self._offline:
            model["offline"] = True
        if self.features.device_name:
            model["device"] = self.features.device_name
        if self._degraded:
            model["degraded"] = self._degraded
        self.publish("mirror", model)

    def _check_status(self, force: bool = False) -> None:
        try:
            offline = is_offline(read_status(self.replica), self.clock())
        except (SyncError, ValueError) as err:  # a damaged status row: say offline rather than guess
            _LOG.warning("sync status unreadable: %s", err)
            offline = True
        if offline != self._offline or force:
            self._offline = offline
            if not force:
                self._show(self._view)

    def _show_enroll(self) -> None:
        assert self.enrollment is not None
        if not self.enrollment.active:
            self._result_since = None
            self._show(attract_view(), "attract")
            return
        step = self.enrollment.step
        self._result_since = time.monotonic() if step in ("done", "withdrawn") else None
        self._show(self.enrollment.view(), "enroll")

    def _welcome(self, track_id: int, message: tuple[str, str] | None = None) -> dict[str, Any]:
        now = self._now()
        view = welcome_view(now)
        view["greeting_en"] = f"Welcome, {time_greeting_en(now).lower()}!"
        view["message_en"] = "Enjoy your visit"
        if message is not None:
            view["message"], view["message_en"] = message
        attrs = self._shoppers.get(track_id, ShopperAttributes())
        rule = choose(self.features.content_rules, attrs.age_band, attrs.gender, int(self.clock() * 1000))
        if rule is not None:
            view["content"] = rule.view()
        if self.enrollment is not None:
            view["can_enroll"] = True
        return view

    def process_frame(self, frame: Frame) -> None:
        """Run one frame through the pipeline (or the enrollment flow, while it runs) and act on its events."""
        from inference.pipeline import TrackEmbedded, TrackEnded

        self._drain_actions()
        if self.enrollment is not None and self.enrollment.active:
            self.stats.frames += 1
            if self.enrollment.feed(frame.image, frame.timestamp):
                self._show_enroll()
            self._idle()
            return
        t0 = time.perf_counter()
        events = self.pipeline.process(frame.image, frame.timestamp, frame.meta)
        self.stats.add("pipeline", (time.perf_counter() - t0) * 1000)
        self.stats.frames += 1
        tracker = getattr(self.pipeline, "tracker", None)
        now_ms = int(self.clock() * 1000)
        for track in tracker.tracks if tracker is not None else ():
            self._track_started_ms.setdefault(track.id, now_ms)
        for event in events:
            if isinstance(event, TrackEmbedded):
                if event.track_id not in self._shoppers:
                    self._shoppers[event.track_id] = self._attributes(frame, event.track_id)
                self._on_embedding(event)
            elif isinstance(event, TrackEnded):
                self._on_track_end(event.track_id, event.embedded, event.meta)
        if self._votes:
            self._last_face = time.monotonic()
        self._idle()

    def _on_embedding(self, event: Any) -> None:
        t0 = time.perf_counter()
        decision = self.identifier.decide(event.embedding, present=self.present_members())
        self.stats.add("match", (time.perf_counter() - t0) * 1000)
        votes = self._votes.setdefault(event.track_id, TrackVotes())
        votes.add(decision)
        if decision.member_id is not None:
            self._accepted[event.track_id] = decision  # what "not me" will lower, if pressed
            if not decision.confirm:
                self._strong.add(event.track_id)  # the face alone was enough once: greet without the digits
        self._meta[event.track_id] = dict(event.meta or {})
        verdict = votes.verdict() if event.track_id not in self._refused else None
        if self._confirm_on_embedding(event.track_id, verdict):
            return
        already = self._greeted.get(event.track_id, "unset")
        if verdict is not None and already != verdict:
            if event.track_id not in self._strong:  # every accepted score under the gallery's greeting threshold
                self._ask_confirm(event.track_id, verdict, self._accepted.get(event.track_id, decision))
                return
            if self._greet(event.track_id, verdict, decision):
                return
        if already == "unset":
            self._greeted[event.track_id] = None
            if self._showing not in ("member", "confirm"):
                self._show(self._welcome(event.track_id), "welcome")

    def _greet(self, track_id: int, member_id: str, decision: Decision) -> bool:
        """Show ``member_id``'s card (it replaces a keypad) and record the visit; False when the member is gone."""
        view = member_view(self.replica, member_id, self.store_id, self._now())
        if view is None:
            return False
        _LOG.info("track %d: member %s (score %.3f)", track_id, member_id, decision.score)
        self._mark_present(member_id)
        self._record_visit(member_id, decision.score)
        self._greeted[track_id] = member_id
        card = f"c-{next(self._cards)}"
        best = self._accepted.get(track_id, decision)
        self._confirm = None
        self._card = {"id": card, "member_id": member_id, "decision": best, "track": track_id}
        view["card"] = card
        if self.enrollment is not None:
            view["can_enroll"] = True  # "刷脸授权": the member's way to the withdrawal screen
        self._show(view, "member")
        return True

    def _attributes(self, frame: Frame, track_id: int) -> ShopperAttributes:
        # The track's detection in this very frame (the tracker just matched it), so box and image agree.
        tracker = getattr(self.pipeline, "tracker", None)
        track = next((t for t in (tracker.tracks if tracker is not None else ()) if t.id == track_id), None)
        if track is None or track.detection is None or track.missed:
            return ShopperAttributes()
        t0 = time.perf_counter()
        attrs = self.features.shopper(frame.image, track.detection)
        self.stats.add("attributes", (time.perf_counter() - t0) * 1000)
        return attrs

    def _record_visit(self, member_id: str, score: float) -> None:
        # The visit and its outbox row commit together (Outbox.visit); a full disk costs the visit
        # record, never the greeting.
        try:
            self.outbox.visit(member_id, self.store_id, float(score))
        except SyncError as err:
            _LOG.error("visit of %s not recorded: %s", member_id, err)

    def _on_track_end(self, track_id: int, embedded: bool, meta: dict[str, Any] | None) -> None:
        now_ms = int(self.clock() * 1000)
        attrs = self._shoppers.pop(track_id, ShopperAttributes())
        self._refused.discard(track_id)
        self._accepted.pop(track_id, None)
        votes = self._votes.pop(track_id, None)
        self._confirm_track_ended(track_id)
        self.traffic.add(started_ms=self._track_started_ms.pop(track_id, now_ms), ended_ms=now_ms,
                         age_band=attrs.age_band, gender=attrs.gender, orientation=attrs.orientation)
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

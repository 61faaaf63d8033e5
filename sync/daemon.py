"""The sync daemon: the coordinator that alone owns pushing, pulling, backoff and sync status.

Like a Home Assistant coordinator, it keeps the last good state and a status object other parts
only read. Two loops share it: the push loop drains the outbox whenever it has rows (checked every
`PUSH_POLL_S`), the pull loop long-polls the cloud (`LONG_POLL_MS`) so a change in the cloud
reaches the replica within about a poll tick. Each loop backs off on its own with jitter while the
cloud is away. Timing constants are module-level so tests can shrink them.

Status (state online/offline/error, last sync, lag, outbox depth, clock skew, counters) is kept in
`SyncStatus`, stored in the replica for the app and `joyedge sync --status`, and written as
Prometheus text metrics (`metrics_path`, for node_exporter's textfile collector).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from api.v1 import sync_pb2
from sync import coupon_use, reconcile_closures
from sync.client import PULL_DEADLINE_S, SyncClient, backoff_delays
from sync.errors import CloudUnavailableError, SnapshotUnsupportedError, SyncError
from sync.identity import DeviceIdentity
from sync.notify import Watchdog
from sync.outbox import Outbox, write_status
from sync.replica import STREAM_NAMES, Replica
from sync.snapshot import apply_snapshot

_LOG = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_ROUNDS_PER_SYNC = 10_000  # a safety stop; a cold sync of 10^5 members needs a few hundred
PUSH_POLL_S = 0.2
LONG_POLL_MS = 10_000
STATUS_EVERY_S = 5.0
ROTATE_RETRY_S = 600.0  # after a failed certificate rotation (the old certificate is still valid)
MAX_CHANGES = 2000  # per stream and pull: big batches amortise the per-call and per-commit cost
SNAPSHOT_PAGE_ROWS = 5000  # rows per snapshot page (the cloud caps it; template pages are smaller)
MIN_CHANGES = 50  # halved down to this when an answer would exceed the message size limit


@dataclass
class SyncStatus:
    """What the device app and `joyedge sync` show about sync health."""

    state: str = "starting"  # starting | online | offline | error
    last_success: float | None = None  # epoch s of the last successful call
    caught_up_at: float | None = None  # epoch s when the replica last matched the cloud's head
    last_error: str | None = None
    outbox_depth: int = 0
    clock_skew_ms: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    pushed: dict[str, int] = field(default_factory=dict)

    def lag_s(self, now: float) -> float | None:
        """Seconds since the replica was last known to be caught up (0 while it is)."""
        return None if self.caught_up_at is None else max(0.0, now - self.caught_up_at)


@dataclass(frozen=True)
class Metric:
    """One exported metric: name, help text and how to read it from the status."""

    name: str
    help: str
    value_fn: Callable[[SyncStatus, float], float | None]


METRICS = (
    Metric("joyedge_sync_online", "1 when the last call to the cloud succeeded", lambda s, _: float(s.state == "online")),
    Metric("joyedge_sync_last_success_seconds", "epoch seconds of the last successful call",
           lambda s, _: s.last_success),
    Metric("joyedge_sync_lag_seconds", "seconds since the replica last caught up with the cloud",
           lambda s, now: s.lag_s(now)),
    Metric("joyedge_sync_outbox_depth", "device events waiting for the cloud's ack", lambda s, _: s.outbox_depth),
    Metric("joyedge_sync_clock_skew_ms", "cloud clock minus device clock", lambda s, _: s.clock_skew_ms),
    Metric("joyedge_sync_applied_total", "replica rows applied since start", lambda s, _: sum(s.applied.values())),
    Metric("joyedge_sync_pushed_total", "events acknowledged by the cloud since start",
           lambda s, _: s.pushed.get("accepted", 0) + s.pushed.get("duplicate", 0)),
    Metric("joyedge_sync_rejected_total", "events the cloud rejected (quarantined) since start",
           lambda s, _: s.pushed.get("rejected", 0)),
)


class SyncDaemon:
    """Pushes the outbox and pulls every stream; run once or forever with jittered backoff."""

    def __init__(self, replica: Replica, client: SyncClient, *, device_id: str, site_id: str,
                 store_id: str, interval_s: float = 5.0, clock: Callable[[], float] = time.time,
                 metrics_path: Path | None = None, identity: DeviceIdentity | None = None) -> None:
        self.replica = replica
        self.client = client
        # The mTLS identity the client presents (None on an insecure loopback client): rotated before
        # it expires, checked on every pull round. A client built with `identity_dir` follows the
        # identity files (also a rotation by admin-serve); one with fixed credentials is rebuilt here.
        self.identity = identity if identity is not None else client.identity
        self._retired: list[SyncClient] = []
        self._rotate_after = 0.0
        self.device_id, self.site_id, self.store_id = device_id, site_id, store_id
        self.interval_s = interval_s
        self.clock = clock
        self.metrics_path = metrics_path
        self.outbox = Outbox(replica, clock=clock)
        self.status = SyncStatus(applied={n: 0 for n in STREAM_NAMES.values()},
                                 pushed={"accepted": 0, "duplicate": 0, "rejected": 0, "compensations": 0})
        self._lock = threading.Lock()
        self._last_publish = 0.0
        self._max_changes = MAX_CHANGES
        self._snapshots = True  # False once the cloud answered that it serves no Snapshot
        self.watchdog = Watchdog()  # pinged by the pull loop (the main thread) only: a wedged pull restarts us

    # -- one round of each ----------------------------------------------------------------------

    def pull_once(self, wait_ms: int = 0) -> dict[str, int]:
        """Pull until no stream has more (the first call may be a long poll); rows applied per stream.

        While one answer is applied, the next is already being fetched with the cursors that answer
        will leave (a cold sync keeps the cloud and the device busy at once). The cursor in the
        replica still moves only with its batch, so a failed apply just discards the prefetch.
        """
        applied = {name: 0 for name in STREAM_NAMES.values()}
        if not self.replica.has_cursors() and self._snapshots:
            self._try_snapshot(applied)  # a cold device: bulk path, then deltas
            wait_ms = 0
        for _ in range(2):
            if not self._pull_pages(wait_ms, applied):
                break
            # The cloud cannot serve our cursors as deltas: start over from a snapshot, once.
            _LOG.warning("sync: the cloud asked for a snapshot (our cursors are beyond its head)")
            if not self._try_snapshot(applied):
                raise SyncError("the cloud asked for a snapshot but serves none; the replica cannot catch up")
            wait_ms = 0
        else:
            raise SyncError("the cloud asked for a snapshot again right after one; giving up this round")
        with self._lock:
            for k, v in applied.items():
                self.status.applied[k] = self.status.applied.get(k, 0) + v
        return applied

    def _try_snapshot(self, applied: dict[str, int]) -> bool:
        """Take a snapshot into `applied`; False when the cloud serves none (then Pull pages from 0)."""
        try:
            self._add(applied, self.snapshot_once())
        except SnapshotUnsupportedError as err:
            self._snapshots = False
            _LOG.warning("sync: %s; pulling page by page instead", err)
            return False
        return True

    @staticmethod
    def _add(total: dict[str, int], more: dict[str, int]) -> None:
        for k, v in more.items():
            total[k] = total.get(k, 0) + v

    def snapshot_once(self) -> dict[str, int]:
        """Replace the replica by a snapshot of the site (`sync.snapshot`); rows applied per stream."""
        request = sync_pb2.SnapshotRequest(device_id=self.device_id, site_id=self.site_id, store_id=self.store_id,
                                           page_rows=SNAPSHOT_PAGE_ROWS)
        used = coupon_use.used_here(self.replica)
        seq, counts = apply_snapshot(self.replica, self.client.snapshot(request))
        coupon_use.after_snapshot(self.replica, used)
        _LOG.info("sync: snapshot at seq %d applied (%s)", seq, ", ".join(f"{k}={v}" for k, v in counts.items()))
        self._ok(caught_up=None)
        return counts

    def _pull_pages(self, wait_ms: int, applied: dict[str, int]) -> bool:
        """Pull pages into `applied` until no stream has more; True when the cloud wants a snapshot."""
        cursors = self.replica.cursors()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-prefetch") as pool:
            pending = pool.submit(self._fetch, cursors, wait_ms)
            for _ in range(MAX_ROUNDS_PER_SYNC):
                response = pending.result()
                if response.snapshot_required:
                    return True
                # The operator's closes of compensations we still show open (asked in every request).
                reconcile_closures.store(self.replica, response.closures, int(self.clock() * 1000))
                more = any(b.has_more for b in response.batches)
                if more:
                    nxt = dict(cursors)
                    nxt.update({b.stream: b.next_seq for b in response.batches})
                    pending = pool.submit(self._fetch, nxt, 0)
                    cursors = nxt
                for batch in response.batches:
                    name = STREAM_NAMES.get(batch.stream, "?")
                    # Through coupon_use: a coupon the cloud gave back is released from "used here".
                    applied[name] = applied.get(name, 0) + coupon_use.apply_batch(self.replica, batch)
                self._ok(caught_up=not more)
                self.watchdog.ping()  # a long catch-up is progress, not a hang
                if not more:
                    break
        return False

    def _fetch(self, cursors: dict[int, int], wait_ms: int) -> sync_pb2.PullResponse:
        while True:
            request = sync_pb2.PullRequest(
                device_id=self.device_id, site_id=self.site_id, store_id=self.store_id,
                cursors=[sync_pb2.Cursor(stream=s, seq=seq) for s, seq in cursors.items()],
                max_changes=self._max_changes, wait_ms=wait_ms,
                open_compensation_ids=reconcile_closures.open_ids(self.replica),
            )
            try:
                return self.client.pull(request, timeout=PULL_DEADLINE_S + wait_ms / 1000)
            except CloudUnavailableError as err:
                if "larger than max" not in str(err) or self._max_changes <= MIN_CHANGES:
                    raise
                self._max_changes = max(MIN_CHANGES, self._max_changes // 2)  # big rows: smaller pages

    def push_once(self) -> dict[str, int]:
        """Drain the outbox until it is empty; counts per outcome."""
        totals = {"accepted": 0, "duplicate": 0, "rejected": 0, "compensations": 0}
        for _ in range(MAX_ROUNDS_PER_SYNC):
            events = self.outbox.pending()
            if not events:
                break
            request = sync_pb2.PushRequest(device_id=self.device_id, site_id=self.site_id, store_id=self.store_id,
                                           events=events, device_time_ms=int(self.clock() * 1000))
            response = self.client.push(request)
            counts = self.outbox.settle(events, response)
            for comp in response.compensations:
                _LOG.warning("sync: compensation %s for %s: %s (%.2f)", comp.kind, comp.member_id, comp.message,
                             comp.amount_cents / 100)
            for ack in response.acks:
                if ack.status == sync_pb2.ACK_STATUS_REJECTED:
                    _LOG.warning("sync: event %s rejected and quarantined: %s", ack.event_id, ack.reason)
            for k, v in counts.items():
                totals[k] += v
            with self._lock:
                self.status.clock_skew_ms = int(response.clock_skew_ms)
                for k, v in counts.items():
                    self.status.pushed[k] = self.status.pushed.get(k, 0) + v
            self._ok(caught_up=None)
        return totals

    def sync_once(self) -> dict[str, int]:
        """Push everything pending, then pull until caught up; returns rows applied per stream."""
        try:
            self.maybe_rotate()
            self.push_once()
            applied = self.pull_once()
        except CloudUnavailableError as err:
            self._failed("offline", err)
            raise
        except SyncError as err:
            self._failed("error", err)
            raise
        finally:
            self.publish(force=True)
        return applied

    # -- forever ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Push and pull until `stop` is set; each loop backs off with jitter while the cloud is away."""
        pusher = threading.Thread(target=self._loop, args=(stop, self._push_step), name="sync-push")
        pusher.start()
        self.watchdog.ready()
        try:
            self._loop(stop, self._pull_step, main=True)
        finally:
            self.watchdog.stopping()
            stop.set()
            pusher.join()
            self.publish(force=True)

    def maybe_rotate(self) -> bool:
        """Rotate the certificate when `needs_rotation()` and switch the client; True when it rotated.

        A failed rotation is logged and tried again after `ROTATE_RETRY_S`; it never stops syncing
        while the old certificate is still valid (it is revoked only `ca.ROTATION_GRACE_S` after the
        new one is first used, which a failed rotation never reaches).
        """
        followed = self.client.identity
        if followed is not None and (self.identity is None or followed.serial != self.identity.serial):
            self.identity = followed  # another process rotated; the client already presents the new one
        ident = self.identity
        if ident is None or self.clock() < self._rotate_after or not ident.needs_rotation():
            return False
        try:
            new = ident.rotate()
        except SyncError as err:
            self._rotate_after = self.clock() + ROTATE_RETRY_S
            _LOG.warning("sync: certificate %x (ends %s) could not rotate: %s; retrying in %.0f s",
                         ident.serial, ident.not_after, err, ROTATE_RETRY_S)
            return False
        if self.client.follows_identity:
            # Calls in flight keep the old channel (valid for the grace); it closes when they end.
            self.client.refresh()
        else:
            old = self.client
            self.client = SyncClient(old.target, credentials=new.channel_credentials(),
                                     options=new.channel_options())
            # Calls in flight on the old channel finish (within the grace); closed at the end.
            self._retired.append(old)
        self.identity = new
        _LOG.info("sync: certificate rotated: %x → %x, valid until %s", ident.serial, new.serial, new.not_after)
        return True

    def close(self) -> None:
        """Close the current client and every client a rotation retired."""
        for client in (*self._retired, self.client):
            client.close()
        self._retired = []

    def _pull_step(self) -> float:
        self.maybe_rotate()
        applied = self.pull_once(wait_ms=LONG_POLL_MS if self.status.caught_up_at else 0)
        if any(applied.values()):
            _LOG.info("sync: applied %s", ", ".join(f"{k}={v}" for k, v in applied.items() if v))
        return 0.0  # the long poll is the wait

    def _push_step(self) -> float:
        if self.outbox.depth():
            counts = self.push_once()
            _LOG.info("sync: pushed %s", ", ".join(f"{k}={v}" for k, v in counts.items() if v))
        return PUSH_POLL_S

    def _loop(self, stop: threading.Event, step: Callable[[], float], main: bool = False) -> None:
        delay = backoff_delays(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
        while not stop.is_set():
            if main:  # each turn is bounded: deadline + long poll (30 s) or a backoff wait (≤ 60 s)
                self.watchdog.ping()
            try:
                wait = step()
                delay = backoff_delays(BACKOFF_INITIAL_S, BACKOFF_MAX_S)
            except CloudUnavailableError as err:
                wait = delay()
                self._failed("offline", err)
                _LOG.warning("sync: %s; retrying in %.1f s", err, wait)
            except SyncError as err:
                wait = delay()
                self._failed("error", err)
                _LOG.error("sync: %s; retrying in %.1f s", err, wait)
            self.publish()
            if wait:
                stop.wait(wait)

    # -- status -----------------------------------------------------------------------------------

    def _ok(self, caught_up: bool | None) -> None:
        now = self.clock()
        with self._lock:
            self.status.state, self.status.last_success, self.status.last_error = "online", now, None
            if caught_up:
                self.status.caught_up_at = now

    def _failed(self, state: str, err: Exception) -> None:
        with self._lock:
            self.status.state, self.status.last_error = state, str(err)

    def snapshot(self) -> dict[str, Any]:
        """The status as plain values (with lag and the live outbox depth)."""
        now = self.clock()
        try:
            depth = self.outbox.depth()
        except SyncError:
            depth = self.status.outbox_depth
        with self._lock:
            self.status.outbox_depth = depth
            out = asdict(self.status)
            out["lag_s"] = self.status.lag_s(now)
        return out

    def publish(self, force: bool = False) -> None:
        """Store the status in the replica and write the metrics file (at most every STATUS_EVERY_S)."""
        now = time.monotonic()
        if not force and now - self._last_publish < STATUS_EVERY_S:
            return
        self._last_publish = now
        snap = self.snapshot()
        try:
            write_status(self.replica, snap)
        except SyncError as err:  # a full disk must not stop syncing once space is back
            _LOG.warning("sync: cannot store status: %s", err)
        if self.metrics_path is not None:
            self._write_metrics()

    def _write_metrics(self) -> None:
        now = self.clock()
        lines = []
        for m in METRICS:
            value = m.value_fn(self.status, now)
            lines += [f"# HELP {m.name} {m.help}", f"# TYPE {m.name} gauge"]
            lines.append(f'{m.name}{{device="{self.device_id}"}} {float("nan") if value is None else float(value)}')
        assert self.metrics_path is not None
        tmp = self.metrics_path.with_suffix(".tmp")
        try:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(tmp, self.metrics_path)
        except OSError as err:
            _LOG.warning("sync: cannot write metrics %s: %s", self.metrics_path, err)

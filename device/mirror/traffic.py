"""客流洞察: hourly counts of the people in front of the mirror, with small buckets suppressed.

One person = one face track. When a track ends its age band, gender, head orientation and dwell
time are added to the counters of the hour it started in, and the per-track record is dropped:
nothing per person outlives the track. When an hour is over its counters go to the cloud through
the outbox (`Outbox.traffic`) with every bucket under MIN_BUCKET people removed, so no count can
single out one or two shoppers. Members are counted too (foot traffic is everybody), anonymously.

Keys of the pushed counts: ``shoppers``; ``age:<band>``, ``gender:<g>``, ``orientation:<o>``;
``age_gender:<band>|<g>``; ``dwell:<bucket>``; ``dwell_ms_total`` (sum, for the mean dwell; sent only
when ``shoppers`` itself is not suppressed). Unknown attributes count as ``unknown``.

Crash safety: the counters of the open hours are also kept in the device's replica file (table
``traffic_open``: aggregates only, the same keys as above — never anything per person), updated in
one transaction with every ended track, and loaded again when the aggregator starts. A closed hour is
enqueued in the outbox and its rows deleted in ONE transaction, so after a kill -9 at any point the
hour is either still in ``traffic_open`` (pushed after the restart) or already in the outbox — never
both, never neither. At shutdown the running hour is not pushed (it would go as two half-hours, each
suppressed on its own): it stays in the file and is pushed once it has closed, after the restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from api.v1 import sync_pb2
from sync.errors import SyncError
from sync.outbox import enqueue

_LOG = logging.getLogger(__name__)

WINDOW_MS = 3_600_000
MIN_BUCKET = 5
# Dwell buckets (upper bound ms, label); the last has no bound.
DWELL_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (10_000, "<10s"), (30_000, "10-30s"), (60_000, "30-60s"), (None, ">60s"))

OPEN_SCHEMA = ("CREATE TABLE IF NOT EXISTS traffic_open (store_id TEXT NOT NULL, window_ms INTEGER NOT NULL, "
               "window_start_ms INTEGER NOT NULL, key TEXT NOT NULL, value INTEGER NOT NULL, "
               "PRIMARY KEY (store_id, window_ms, window_start_ms, key)) WITHOUT ROWID")
_UPSERT = ("INSERT INTO traffic_open (store_id, window_ms, window_start_ms, key, value) VALUES (?, ?, ?, ?, ?) "
           "ON CONFLICT (store_id, window_ms, window_start_ms, key) DO UPDATE SET value = value + excluded.value")

_Window = tuple[str, int, int]  # store id, window length, window start


def dwell_bucket(dwell_ms: int) -> str:
    """The label of the dwell bucket of ``dwell_ms``."""
    for bound, label in DWELL_BUCKETS:
        if bound is None or dwell_ms < bound:
            return label
    raise AssertionError("unreachable")  # pragma: no cover


def suppress(counts: Counter, minimum: int = MIN_BUCKET) -> dict[str, int]:
    """The counts without any bucket of fewer than ``minimum`` people (sums go only with enough shoppers)."""
    shoppers = counts.get("shoppers", 0)
    out = {}
    for key, value in counts.items():
        if key == "dwell_ms_total":
            if shoppers >= minimum:
                out[key] = int(value)
        elif value >= minimum:
            out[key] = int(value)
    return out


class TrafficAggregator:
    """Hourly counters for one store; `add` per ended track, `flush_due` from the app's idle loop.

    With an outbox over a replica (the app's case) the open hours survive a crash (module docstring);
    ``clock`` (wall-clock seconds) decides at shutdown which hours have closed.
    """

    def __init__(self, outbox: Any, store_id: str, *, window_ms: int = WINDOW_MS, minimum: int = MIN_BUCKET,
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.store_id = store_id
        self.window_ms = window_ms
        self.minimum = minimum
        self.clock = clock
        self.replica = getattr(outbox, "replica", None)
        self._windows: dict[_Window, Counter] = {}
        self._lock = threading.Lock()
        self.pushed: list[str] = []  # outbox event ids, for the app's log and tests
        self._restore()

    # -- the file ------------------------------------------------------------------------------------

    def _restore(self) -> None:
        if self.replica is None:
            return
        try:
            with self.replica.transaction() as conn:
                conn.execute(OPEN_SCHEMA)
                rows = conn.execute("SELECT store_id, window_ms, window_start_ms, key, value FROM traffic_open"
                                    ).fetchall()
        except SyncError as err:  # counting still works from RAM; only crash safety is lost
            _LOG.error("traffic: open hours not restored from the replica: %s", err)
            return
        for store, window_ms, start, key, value in rows:
            self._windows.setdefault((str(store), int(window_ms), int(start)), Counter())[str(key)] += int(value)
        if self._windows:
            _LOG.info("traffic: %d open window(s) restored (%d shoppers)", len(self._windows),
                      sum(c["shoppers"] for c in self._windows.values()))

    def _persist(self, window: _Window, delta: Counter) -> None:
        if self.replica is None:
            return
        try:
            with self.replica.transaction() as conn:
                conn.executemany(_UPSERT, [(*window, key, int(value)) for key, value in delta.items()])
        except SyncError as err:  # still counted in RAM: lost only if the app also dies before the hour is pushed
            _LOG.error("traffic: counters not saved in the replica: %s", err)

    def _push(self, window: _Window, counts: Counter) -> str:
        store, window_ms, start = window
        payload = sync_pb2.TrafficAggregateEvent(store_id=store, window_start_ms=start, window_ms=window_ms,
                                                 counts=suppress(counts, self.minimum))
        if self.replica is None:
            return str(self.outbox.traffic(store, start, window_ms, dict(payload.counts)))
        # The event and the end of the open rows commit together: exactly once across kill -9.
        with self.replica.transaction() as conn:
            event_id = enqueue(conn, self.replica.cipher, "traffic", payload, now_ms=int(self.clock() * 1000))
            conn.execute("DELETE FROM traffic_open WHERE store_id = ? AND window_ms = ? AND window_start_ms = ?",
                         window)
        return event_id

    # -- counting ------------------------------------------------------------------------------------

    def add(self, *, started_ms: int, ended_ms: int, age_band: str | None, gender: str | None,
            orientation: str | None) -> None:
        """Count one person (one track) in the window it started in (and save the window's counters)."""
        a, g, o = age_band or "unknown", gender or "unknown", orientation or "unknown"
        dwell = max(0, ended_ms - started_ms)
        window = (self.store_id, self.window_ms, started_ms - started_ms % self.window_ms)
        delta = Counter({"shoppers": 1, f"age:{a}": 1, f"gender:{g}": 1, f"orientation:{o}": 1,
                         f"age_gender:{a}|{g}": 1, f"dwell:{dwell_bucket(dwell)}": 1, "dwell_ms_total": dwell})
        with self._lock:
            self._windows.setdefault(window, Counter()).update(delta)
            self._persist(window, delta)

    def flush_due(self, now_ms: int) -> int:
        """Push every window that has ended by ``now_ms``; returns how many were pushed."""
        return self._flush(lambda w: w[2] + w[1] <= now_ms)

    def flush_all(self) -> int:
        """At shutdown: push the windows that have ended by the clock. The running window stays in the
        replica for the next start; without a replica (nothing would keep it) it is pushed too."""
        if self.replica is None:
            return self._flush(lambda w: True)
        return self.flush_due(int(self.clock() * 1000))

    def _flush(self, due: Callable[[_Window], bool]) -> int:
        pushed = 0
        with self._lock:  # add() waits: a window's RAM and file counters change together
            for window in sorted(w for w in self._windows if due(w)):
                try:
                    self.pushed.append(self._push(window, self._windows[window]))
                except SyncError as err:
                    # Keep the counts for the next try (a full disk clears); they are aggregates already.
                    _LOG.error("traffic window %d not recorded: %s", window[2], err)
                    continue
                del self._windows[window]
                pushed += 1
        return pushed

    def pending(self) -> dict[int, dict[str, int]]:
        """The unsent windows of this store by start (raw, unsuppressed: only for this device's own status
        page and tests)."""
        with self._lock:
            return {start: dict(c) for (store, window_ms, start), c in self._windows.items()
                    if store == self.store_id and window_ms == self.window_ms}

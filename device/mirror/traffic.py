"""客流洞察: hourly counts of the people in front of the mirror, with small buckets suppressed.

One person = one face track. When a track ends its age band, gender, head orientation and dwell
time are added to the counters of the hour it started in, and the per-track record is dropped:
nothing per person outlives the track. When an hour is over its counters go to the cloud through
the outbox (`Outbox.traffic`) with every bucket under MIN_BUCKET people removed, so no count can
single out one or two shoppers. Members are counted too (foot traffic is everybody), anonymously.

Keys of the pushed counts: ``shoppers``; ``age:<band>``, ``gender:<g>``, ``orientation:<o>``;
``age_gender:<band>|<g>``; ``dwell:<bucket>``; ``dwell_ms_total`` (sum, for the mean dwell; sent only
when ``shoppers`` itself is not suppressed). Unknown attributes count as ``unknown``.
Counters of the running hour live in RAM: a crash loses at most that hour's counts.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from sync.errors import SyncError

_LOG = logging.getLogger(__name__)

WINDOW_MS = 3_600_000
MIN_BUCKET = 5
# Dwell buckets (upper bound ms, label); the last has no bound.
DWELL_BUCKETS: tuple[tuple[int | None, str], ...] = (
    (10_000, "<10s"), (30_000, "10-30s"), (60_000, "30-60s"), (None, ">60s"))


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
    """Hourly counters for one store; `add` per ended track, `flush_due` from the app's idle loop."""

    def __init__(self, outbox: Any, store_id: str, *, window_ms: int = WINDOW_MS, minimum: int = MIN_BUCKET) -> None:
        self.outbox = outbox
        self.store_id = store_id
        self.window_ms = window_ms
        self.minimum = minimum
        self._windows: dict[int, Counter] = {}
        self._lock = threading.Lock()
        self.pushed: list[str] = []  # outbox event ids, for the app's log and tests

    def add(self, *, started_ms: int, ended_ms: int, age_band: str | None, gender: str | None,
            orientation: str | None) -> None:
        """Count one person (one track) in the window it started in."""
        a, g, o = age_band or "unknown", gender or "unknown", orientation or "unknown"
        dwell = max(0, ended_ms - started_ms)
        start = started_ms - started_ms % self.window_ms
        with self._lock:
            c = self._windows.setdefault(start, Counter())
            c["shoppers"] += 1
            c[f"age:{a}"] += 1
            c[f"gender:{g}"] += 1
            c[f"orientation:{o}"] += 1
            c[f"age_gender:{a}|{g}"] += 1
            c[f"dwell:{dwell_bucket(dwell)}"] += 1
            c["dwell_ms_total"] += dwell

    def flush_due(self, now_ms: int) -> int:
        """Push every window that has ended by ``now_ms``; returns how many were pushed."""
        return self._flush(lambda start: start + self.window_ms <= now_ms)

    def flush_all(self) -> int:
        """Push every window, the running one too (on shutdown)."""
        return self._flush(lambda start: True)

    def _flush(self, due: Any) -> int:
        with self._lock:
            ready = sorted(start for start in self._windows if due(start))
            batches = [(start, self._windows.pop(start)) for start in ready]
        pushed = 0
        for start, counts in batches:
            try:
                self.pushed.append(self.outbox.traffic(self.store_id, start, self.window_ms,
                                                       suppress(counts, self.minimum)))
                pushed += 1
            except SyncError as err:
                # Keep the counts for the next try (a full disk clears); they are aggregates already.
                _LOG.error("traffic window %d not recorded: %s", start, err)
                with self._lock:
                    self._windows.setdefault(start, Counter()).update(counts)
        return pushed

    def pending(self) -> dict[int, dict[str, int]]:
        """The unsent windows (raw, unsuppressed: only for this device's own status page and tests)."""
        with self._lock:
            return {start: dict(c) for start, c in self._windows.items()}

"""客流洞察 survives kill -9: the open hour's counters are in the replica file, and a closed hour reaches the
outbox exactly once (tests/mirror/traffic_crash_child.py is SIGKILLed at several points of its work)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from device.mirror.traffic import MIN_BUCKET, WINDOW_MS, TrafficAggregator
from sync.crypto import TemplateCipher
from sync.outbox import Outbox
from sync.replica import Replica
from tests.mirror.traffic_crash_child import STORE, T0

ROOT = Path(__file__).resolve().parents[2]
HOURS, PER_HOUR = 4, 6
AGGREGATE_KEYS = ("shoppers", "age:", "gender:", "orientation:", "age_gender:", "dwell:", "dwell_ms_total")


def _run_until(tmp_path: Path, line: str) -> list[str]:
    """Start the child, read its steps until `line`, SIGKILL it there; returns the steps it announced."""
    child = subprocess.Popen([sys.executable, "-m", "tests.mirror.traffic_crash_child", str(tmp_path / "replica.db"),
                              str(tmp_path / "identity"), str(HOURS), str(PER_HOUR)],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        assert child.stdout is not None
        for raw in child.stdout:
            seen.append(raw.strip())
            if seen[-1] == line:
                break
        else:
            pytest.fail(f"child ended before {line!r}: {child.stderr.read() if child.stderr else ''}")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL
    return seen


def _traffic_events(replica: Replica) -> list:
    return [e.traffic for e in Outbox(replica).pending(limit=10_000) if e.WhichOneof("payload") == "traffic"]


@pytest.mark.parametrize("kill_at", ["added 0 3", "flushed 0 1", "added 1 5", "added 2 0", "flushed 2 1", "done"])
def test_open_hours_survive_sigkill_and_each_hour_is_pushed_exactly_once(tmp_path, kill_at):
    """GIVEN an app counting shoppers (6 per hour, each hour pushed when it closes) WHEN it is killed with
    SIGKILL at `kill_at` and started again THEN the counts it had announced are restored from the replica,
    every hour reaches the outbox exactly once with all its shoppers, and a further restart pushes nothing."""
    seen = _run_until(tmp_path, kill_at)
    # Only aggregates are on disk: the open-hour table holds counter names and numbers, nothing per person.
    with sqlite3.connect(tmp_path / "replica.db") as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(traffic_open)")]
        keys = [r[0] for r in conn.execute("SELECT key FROM traffic_open")]
    assert cols == ["store_id", "window_ms", "window_start_ms", "key", "value"]
    assert all(k.startswith(AGGREGATE_KEYS) for k in keys)

    replica = Replica(tmp_path / "replica.db", TemplateCipher(tmp_path / "identity"))
    try:
        agg = TrafficAggregator(Outbox(replica), STORE)
        announced = defaultdict(int)
        for step in seen:
            if step.startswith("added"):
                announced[T0 + int(step.split()[1]) * WINDOW_MS] += 1
        pushed_before = {t.window_start_ms for t in _traffic_events(replica)}
        restored = agg.pending()
        assert not set(restored) & pushed_before  # an hour is in the file or in the outbox, never both
        for start, n in announced.items():
            if start not in pushed_before:  # announced counts of open hours were saved before the announcement
                assert restored[start]["shoppers"] >= n
        # The rest of the day: the app finishes counting and every hour closes.
        for h in range(HOURS):
            start = T0 + h * WINDOW_MS
            if start in pushed_before:
                continue
            for i in range(restored.get(start, {}).get("shoppers", 0), PER_HOUR):
                agg.add(started_ms=start + i * 1000, ended_ms=start + i * 1000 + 15_000, age_band="18-60",
                        gender="female", orientation="front")
        agg.flush_due(T0 + HOURS * WINDOW_MS)
        events = _traffic_events(replica)
        starts = [t.window_start_ms for t in events]
        assert sorted(starts) == [T0 + h * WINDOW_MS for h in range(HOURS)]  # each hour exactly once
        for t in events:
            assert dict(t.counts) == {"shoppers": PER_HOUR, "age:18-60": PER_HOUR, "gender:female": PER_HOUR,
                                      "orientation:front": PER_HOUR, "age_gender:18-60|female": PER_HOUR,
                                      "dwell:10-30s": PER_HOUR, "dwell_ms_total": PER_HOUR * 15_000}
        # Started again: nothing left to restore or push.
        again = TrafficAggregator(Outbox(replica), STORE)
        assert again.pending() == {} and again.flush_due(T0 + 10 * HOURS * WINDOW_MS) == 0
        assert len(_traffic_events(replica)) == HOURS
    finally:
        replica.close()


def test_a_restart_within_the_hour_keeps_one_window_and_small_buckets_stay_suppressed(tmp_path):
    """GIVEN 3 shoppers counted, the app stopped cleanly (its running hour is not pushed as a half) WHEN it
    starts again and counts 3 more THEN the hour goes once with 6 shoppers, its 2 men and 4 women suppressed
    (both under 5) while the totals stay."""
    replica = Replica(tmp_path / "r.db", TemplateCipher(tmp_path / "id"))
    now = [T0 / 1000 + 600]
    try:
        agg = TrafficAggregator(Outbox(replica), STORE, clock=lambda: now[0])
        for i, gender in enumerate(("male", "female", "female")):
            agg.add(started_ms=T0 + i, ended_ms=T0 + i + 5_000, age_band="18-60", gender=gender, orientation="front")
        assert agg.flush_all() == 0 and _traffic_events(replica) == []  # shutdown inside the hour
        agg = TrafficAggregator(Outbox(replica), STORE, clock=lambda: now[0])
        assert agg.pending()[T0]["shoppers"] == 3
        for i, gender in enumerate(("male", "female", "female")):
            agg.add(started_ms=T0 + 10 + i, ended_ms=T0 + 10 + i + 5_000, age_band="18-60", gender=gender,
                    orientation="front")
        now[0] = (T0 + WINDOW_MS) / 1000
        assert agg.flush_all() == 1
        [event] = _traffic_events(replica)
        assert dict(event.counts) == {"shoppers": 6, "age:18-60": 6, "orientation:front": 6, "dwell:<10s": 6,
                                      "dwell_ms_total": 30_000}
        assert all(v >= MIN_BUCKET for k, v in event.counts.items() if k != "dwell_ms_total")
    finally:
        replica.close()

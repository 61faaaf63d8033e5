"""Child process of tests/mirror/test_traffic_crash.py: counts shoppers hour by hour into a replica file and
pushes each hour when it closes, announcing every step on stdout, until the test SIGKILLs it.

    python -m tests.mirror.traffic_crash_child <replica.db> <identity dir> <hours> <per hour>
"""

from __future__ import annotations

import sys
from pathlib import Path

from device.mirror.traffic import WINDOW_MS, TrafficAggregator
from sync.crypto import TemplateCipher
from sync.outbox import Outbox
from sync.replica import Replica

T0 = 1_700_000_000_000 - 1_700_000_000_000 % WINDOW_MS
STORE = "store-1"


def main(argv: list[str]) -> None:
    replica = Replica(Path(argv[0]), TemplateCipher(Path(argv[1])))
    hours, per_hour = int(argv[2]), int(argv[3])
    agg = TrafficAggregator(Outbox(replica), STORE)
    print("ready", flush=True)
    for h in range(hours):
        start = T0 + h * WINDOW_MS
        for i in range(per_hour):
            agg.add(started_ms=start + i * 1000, ended_ms=start + i * 1000 + 15_000, age_band="18-60",
                    gender="female", orientation="front")
            print(f"added {h} {i}", flush=True)
        print(f"flushed {h} {agg.flush_due(start + WINDOW_MS)}", flush=True)
    print("done", flush=True)
    sys.stdin.read()  # wait for the kill


if __name__ == "__main__":
    main(sys.argv[1:])

"""Sync engine benchmark (loopback only, bounded loops).

1. Cold sync of one site (MEMBERS members, TAGS tags, TEMPLATES templates, one coupon per member)
   from a real reference cloud into an empty device replica, against the raw peer: `executemany` of
   the same rows into the same replica schema in one transaction (`cold_vs_raw` = our rows/s over
   raw rows/s; the raw side neither fetches, decodes nor encrypts).
2. Change-to-device latency: a member changed in the cloud until the running daemon has it in the
   replica (long poll), CHANGES times; p50/p95.
3. Push: EVENTS visit events already in the outbox, drained by the daemon; events/s.

The cloud runs in its own process (`joyedge-cloud serve --insecure` on loopback), as it does on a
real network: in one process the cloud's and the device's Python share a GIL, and SQLite's
executemany (which drops the GIL per row) convoys with the cloud's thread — that measured the GIL,
not the sync engine (1.88 s against 0.62 s for the same 130k-row snapshot).
A cold device takes the Snapshot path (`sync.snapshot`); `seal_us_per_template` is the AES-GCM
sealing of one template alone, which the snapshot pays per template row.

The site is written in bulk straight into the cloud's tables (the per-row demo generator needs an
hour for 1.2 M rows); rows have the shapes the demo generator gives (`cloud_stub.demo`).

    .venv/bin/python bench/sync.py [--members 100000 --tags 1000000 --templates 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud_stub.storage import SqliteStorage, now_ms
from cloud_stub.storage.crypto import TemplateSealer
from sync import daemon as daemon_mod
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.replica import _COLUMNS, _UPSERT, Replica

SITE, STORE = "site-bench", "store-bench-1"
DAY_MS = 24 * 3600 * 1000
TAG_KINDS = ["R", "F", "M", "rfm", "gender", "generation", "zodiac", "life_stage", "power", "activity"]
TAG_VALUES = ["活跃客户", "老客户", "中高消费", "重要价值客户", "女", "90后", "天秤座", "已婚有孩", "中", "活跃"]


def populate(db: Path, members: int, tags: int, templates: int, seed: int = 1) -> int:
    """Write the site in bulk (one transaction per table); returns the number of rows."""
    storage = SqliteStorage(db)
    storage.upsert_site(SITE, "bench site")
    storage.upsert_store(STORE, SITE, "bench store")
    rng = np.random.default_rng(seed)
    now = now_ms()
    sealer = TemplateSealer(storage.key_path)
    seq = 1000
    with storage.transaction("bench members") as conn:
        conn.executemany(
            "INSERT INTO members (member_id, site_id, name, tier, points, tier_keep_points, phone_hash, phone_last4,"
            " gender, birthday, updated_at_ms, seq) VALUES (?, ?, ?, ?, ?, 0, '', ?, ?, ?, ?, ?)",
            ((f"m{i:06d}", SITE, f"会员{i}", "金卡", int(p), f"{i % 10000:04d}", "F" if i % 2 else "M",
              "1990-05-01", now, seq + i) for i, p in enumerate(rng.integers(0, 20000, members))))
        seq += members
        conn.executemany(
            "INSERT INTO coupons (coupon_id, member_id, title, kind, value_cents, threshold_cents, store_ids,"
            " valid_from_ms, valid_until_ms, usage_hint, status, seq) VALUES (?, ?, '满100减10', 2, 1000, 10000,"
            " '[]', ?, ?, '出示给收银员', 1, ?)",
            ((f"m{i:06d}-c1", f"m{i:06d}", now - DAY_MS, now + 30 * DAY_MS, seq + i) for i in range(members)))
        seq += members
    with storage.transaction("bench tags") as conn:
        owners = rng.integers(0, members, tags)
        conn.executemany(
            "INSERT INTO tags (tag_id, member_id, kind, value, score, computed_at_ms, valid_until_ms, seq)"
            " VALUES (?, ?, ?, ?, 0.5, ?, 0, ?)",
            ((f"t{i:07d}", f"m{int(o):06d}", TAG_KINDS[i % 10], TAG_VALUES[i % 10], now, seq + i)
             for i, o in enumerate(owners)))
        seq += tags
    vecs = rng.normal(size=(templates, 128)).astype("<f4")
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with storage.transaction("bench templates") as conn:
        conn.executemany(
            "INSERT INTO consents (consent_id, member_id, device_id, text_version, agreed_at_ms, withdrawn_at_ms)"
            " VALUES (?, ?, 'seed', 'v1', ?, NULL)",
            ((f"m{i % members:06d}-consent", f"m{i % members:06d}", now) for i in range(min(templates, members))))
        conn.executemany(
            "INSERT INTO templates (template_id, member_id, model, vector, consent_id, created_at_ms, weight, seq)"
            " VALUES (?, ?, 'dlib_resnet_v1', ?, ?, ?, 1.0, ?)",
            ((f"f{i:06d}", f"m{i % members:06d}",
              sealer.seal(f"f{i:06d}", f"m{i % members:06d}", vecs[i].tobytes()),
              f"m{i % members:06d}-consent", now, seq + i) for i in range(templates)))
        seq += templates
        conn.execute("UPDATE seq_counter SET value = ? WHERE id = 1", (seq,))
    storage.close()
    return 2 * members + tags + templates


def raw_insert(source: Path, target: Path) -> tuple[float, int]:
    """The peer: the synced replica's rows, executemany'd into a fresh replica in one transaction."""
    fresh = Replica(target, TemplateCipher(target.parent / "raw-identity"))
    fresh.close()
    src = sqlite3.connect(source)
    data = {t: src.execute(f"SELECT {', '.join(c)} FROM {t}").fetchall() for t, c in _COLUMNS.items()}
    src.close()
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for table, rows in data.items():
        conn.executemany(_UPSERT[table], rows)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds, sum(len(r) for r in data.values())


def _serve(db: Path) -> tuple[subprocess.Popen, int]:
    """The reference cloud in its own process (as on a real network: the device's Python and the
    cloud's do not share one GIL); returns it and its port."""
    proc = subprocess.Popen([sys.executable, "-m", "cloud_stub.cli", "serve", "--db", str(db), "--insecure",
                             "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r":(\d+) ", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"cloud did not start: {line!r}")
    return proc, int(match.group(1))


def _seal_cost(replica: Replica, templates: int) -> float:
    """µs to seal one template (AES-256-GCM, as the snapshot does per row), measured on its own."""
    n = max(1, min(templates, 100_000))
    vecs = [np.random.default_rng(2).normal(size=128).astype("<f4").tobytes()] * n
    ids = [f"f{i:06d}" for i in range(n)]
    t0 = time.perf_counter()
    replica.cipher.encrypt_many(ids, vecs)
    return (time.perf_counter() - t0) / n * 1e6


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def bench(members: int, tags: int, templates: int, changes: int, events: int) -> dict:
    """Run all three parts; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        rows = populate(root / "cloud.db", members, tags, templates)
        gen_s = time.perf_counter() - t0
        server, port = _serve(root / "cloud.db")
        storage = SqliteStorage(root / "cloud.db")  # the bench writes changes as another cloud process would
        replica = Replica(root / "dev" / "replica.db", TemplateCipher(root / "dev" / "identity"))
        client = SyncClient(f"127.0.0.1:{port}", insecure=True)
        try:
            daemon = SyncDaemon(replica, client, device_id="bench-dev", site_id=SITE, store_id=STORE)
            t0 = time.perf_counter()
            applied = daemon.pull_once()
            cold_s = time.perf_counter() - t0
            assert sum(applied.values()) == rows, (applied, rows)
            raw_s, raw_rows = raw_insert(root / "dev" / "replica.db", root / "raw" / "replica.db")
            seal_us = _seal_cost(replica, templates)
            latency = _latency(daemon, storage, changes)
            push = _push(daemon, events)
        finally:
            client.close()
            replica.close()
            storage.close()
            server.terminate()
            server.wait(timeout=30)
    ours_rate, raw_rate = rows / cold_s, raw_rows / raw_s
    return {
        "rows": rows, "generate_s": round(gen_s, 1),
        "cold_sync_s": round(cold_s, 2), "cold_rows_per_s": round(ours_rate),
        "raw_executemany_s": round(raw_s, 2), "raw_rows_per_s": round(raw_rate),
        "cold_vs_raw": round(ours_rate / raw_rate, 3), "seal_us_per_template": round(seal_us, 2),
        "change_to_device_p50_ms": round(_pct(latency, 50), 1), "change_to_device_p95_ms": round(_pct(latency, 95), 1),
        "changes": len(latency), "push_events": events, "push_events_per_s": round(push),
    }


def _latency(daemon: SyncDaemon, storage, changes: int) -> list[float]:
    stop = threading.Event()
    runner = threading.Thread(target=daemon.run, args=(stop,), name="bench-daemon")
    runner.start()
    watcher = sqlite3.connect(daemon.replica.path)
    out = []
    try:
        for k in range(changes):
            name = f"改名{k}"
            t0 = time.perf_counter()
            storage.upsert_member(member_id="m000001", site_id=SITE, name=name)
            deadline = t0 + 30
            while watcher.execute("SELECT name FROM members WHERE member_id = 'm000001'").fetchone()[0] != name:
                if time.perf_counter() > deadline:
                    raise RuntimeError("a change did not reach the device within 30 s")
                time.sleep(0.002)
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join()
        watcher.close()
    return out


def _push(daemon: SyncDaemon, events: int) -> float:
    with daemon.replica.transaction() as conn:
        from api.v1 import sync_pb2
        from sync.outbox import enqueue

        for i in range(events):
            enqueue(conn, daemon.replica.cipher, "visit",
                    sync_pb2.VisitEvent(member_id=f"m{i % 1000:06d}", store_id=STORE, score=0.95))
    t0 = time.perf_counter()
    totals = daemon.push_once()
    seconds = time.perf_counter() - t0
    assert totals["accepted"] == events, totals
    return events / seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--tags", type=int, default=1_000_000)
    p.add_argument("--templates", type=int, default=100_000)
    p.add_argument("--changes", type=int, default=40)
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    daemon_mod.LONG_POLL_MS = 10_000
    result = bench(args.members, args.tags, args.templates, args.changes, args.events)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

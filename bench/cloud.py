"""Reference cloud benchmarks (loopback only, bounded loops).

1. `tags compute` for MEMBERS members and ~TXNS transactions, against peers over the same rows:
   the bare SQL GROUP BY the factory starts with, and a plain numpy pass (read every row, bincount).
2. `Sync.Pull` of an empty delta with CLIENTS concurrent clients (closed loop, PULLS each), against
   the gRPC health Check under the same load (the server's floor).

    .venv/bin/python bench/cloud.py [--members 100000 --txns 3000000 --clients 200 --pulls 25]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.v1 import sync_pb2, sync_pb2_grpc
from cloud_stub.demo import seed_demo
from cloud_stub.server import start_server
from cloud_stub.storage import SqliteStorage, now_ms
from cloud_stub.tags import compute_tags

DAY_MS = 24 * 3600 * 1000
#: Seconds between a client's pulls in the paced run (devices poll every few seconds; 0.5 s is harsher).
PACE_S = 0.5
BRANDS = ["优衣库", "ZARA", "太平鸟", "星巴克", "喜茶", "海底捞", "丝芙兰", "屈臣氏", "乐高", "巴拉巴拉"]


def populate(storage: SqliteStorage, members: int, txns: int, seed: int = 1) -> None:
    """Bulk members and transactions (numpy-generated, one transaction each table)."""
    rng = np.random.default_rng(seed)
    now = now_ms()
    storage.upsert_site("site-b", "bench")
    for i, b in enumerate(BRANDS):
        storage.upsert_store(f"s{i}", "site-b", b, b)
    years = rng.integers(1950, 2010, members)
    months = rng.integers(1, 13, members)
    daysm = rng.integers(1, 29, members)
    genders = rng.choice(["F", "M"], members)
    with storage.transaction("bench members") as conn:
        conn.executemany(
            "INSERT INTO members (member_id, site_id, name, tier, points, tier_keep_points, phone_hash, phone_last4,"
            " gender, birthday, updated_at_ms, seq) VALUES (?, 'site-b', '会员', '普卡', 0, 0, '', '', ?, ?, ?, 0)",
            ((f"m{i:06d}", str(genders[i]), f"{years[i]}-{months[i]:02d}-{daysm[i]:02d}", now) for i in range(members)),
        )
    # Purchases per member ~ geometric around txns/members; 95 % of members buy.
    owner = np.sort(rng.integers(0, int(members * 0.95), txns))
    at = now - rng.integers(1, 720 * DAY_MS, txns)
    store = rng.integers(0, len(BRANDS), txns)
    amount = (rng.lognormal(9.5, 0.8, txns) // 100 * 100 + 100).astype(np.int64)
    with storage.transaction("bench transactions") as conn:
        conn.executemany(
            "INSERT INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, 1)",
            ((f"t{j}", f"m{owner[j]:06d}", f"s{store[j]}", BRANDS[store[j]], int(amount[j]), int(at[j]))
             for j in range(txns)),
        )


def bench_tags(db: Path, members: int, txns: int) -> dict[str, float]:
    storage = SqliteStorage(db)
    t0 = time.perf_counter()
    populate(storage, members, txns)
    print(f"populated {members} members / {txns} transactions in {time.perf_counter() - t0:.1f} s", flush=True)
    as_of = now_ms()
    with storage.transaction("peer", write=False) as conn:
        t0 = time.perf_counter()
        conn.execute("SELECT member_id, COUNT(*), SUM(amount_cents), MIN(at_ms), MAX(at_ms) FROM transactions"
                     " WHERE kind = 1 AND at_ms <= ? GROUP BY member_id", (as_of,)).fetchall()
        groupby = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = conn.execute("SELECT member_id, amount_cents, at_ms FROM transactions WHERE kind = 1").fetchall()
        ids, inv = np.unique(np.array([r[0] for r in rows]), return_inverse=True)
        amt = np.array([r[1] for r in rows], dtype=np.int64)
        np.bincount(inv, weights=amt)
        np.bincount(inv)
        numpy_pass = time.perf_counter() - t0
        del rows
    t0 = time.perf_counter()
    run = compute_tags(storage, as_of_ms=as_of, progress=lambda m: print(f"  tags: {m}", flush=True))
    tags = time.perf_counter() - t0
    print(f"tags compute: {tags:.1f} s for {run.members} members / {run.transactions} purchases,"
          f" {run.tags_written} tags (k={run.kmeans_k}, silhouette {run.kmeans_silhouette:.3f})")
    print(f"  peer SQL GROUP BY pass: {groupby:.1f} s   peer numpy pass (read rows + bincount): {numpy_pass:.1f} s")
    print(f"  ratio tags/GROUP BY = {tags / groupby:.2f}   tags/numpy = {tags / numpy_pass:.2f}   budget 60 s:"
          f" {'OK' if tags <= 60 else 'OVER'}")
    return {"tags_s": tags, "groupby_s": groupby, "numpy_s": numpy_pass}


def _load(address: str, clients: int, calls: int, make_call, interval_s: float = 0.0) -> list[float]:
    """`clients` threads, each on its own channel, each making `calls` calls back to back, or one
    every `interval_s` (± 50 % jitter, like devices polling) when interval_s > 0."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        with grpc.insecure_channel(address) as ch:
            call = make_call(ch, i)
            call()  # connect and warm up
            start.wait()
            mine = []
            pace = np.random.default_rng(i)
            for _ in range(calls):
                if interval_s:
                    time.sleep(interval_s * pace.uniform(0.5, 1.5))
                t0 = time.perf_counter()
                call()
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def bench_pull(db: Path, clients: int, pulls: int) -> dict[str, float]:
    storage = SqliteStorage(db)
    seed_demo(storage, members=200, days=120, seed=3)
    with start_server(db, port=0, storage=storage) as server:
        with grpc.insecure_channel(server.address) as ch:
            head = sync_pb2_grpc.SyncStub(ch).Pull(sync_pb2.PullRequest(site_id="site-demo", max_changes=5000, cursors=[
                sync_pb2.Cursor(stream=s) for s in (1, 2, 3, 4)]), timeout=30)
        cursors = [sync_pb2.Cursor(stream=b.stream, seq=b.next_seq) for b in head.batches]
        request = sync_pb2.PullRequest(device_id="bench", site_id="site-demo", cursors=cursors)

        def pull(ch: grpc.Channel, _i: int):
            stub = sync_pb2_grpc.SyncStub(ch)

            def call() -> None:
                resp = stub.Pull(request, timeout=30)
                assert not any(b.changes for b in resp.batches)
            return call

        def check(ch: grpc.Channel, _i: int):
            stub = health_pb2_grpc.HealthStub(ch)
            return lambda: stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)

        results = {}
        for mode, interval in (("paced 0.5 s", PACE_S), ("closed loop", 0.0)):
            for name, maker in (("Sync.Pull (empty delta)", pull), ("Health.Check (peer)", check)):
                t0 = time.perf_counter()
                lat = _load(server.address, clients, pulls, maker, interval)
                wall = time.perf_counter() - t0
                results[(mode, name)] = (_pct(lat, 0.5), _pct(lat, 0.99), len(lat) / wall)
                r = results[(mode, name)]
                print(f"{name}, {mode}: {clients} clients x {pulls} calls: p50 {r[0]:.1f} ms,"
                      f" p99 {r[1]:.1f} ms, {r[2]:.0f} calls/s", flush=True)
            p99 = results[(mode, "Sync.Pull (empty delta)")][1]
            print(f"  {mode}: ratio Pull p99 / Health p99 = {p99 / results[(mode, 'Health.Check (peer)')][1]:.2f}"
                  f"   budget 50 ms: {'OK' if p99 <= 50 else 'OVER'}")
    return {"pull_p99_ms": results[("paced 0.5 s", "Sync.Pull (empty delta)")][1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--txns", type=int, default=3_000_000)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--pulls", type=int, default=25)
    ap.add_argument("--only", choices=["tags", "pull"])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="joyedge-bench-") as tmp:
        if args.only in (None, "pull"):
            bench_pull(Path(tmp) / "pull.db", args.clients, args.pulls)
        if args.only in (None, "tags"):
            bench_tags(Path(tmp) / "tags.db", args.members, args.txns)
    return 0


if __name__ == "__main__":
    sys.exit(main())

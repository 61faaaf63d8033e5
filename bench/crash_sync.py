"""Crash harness for the sync engine: SIGKILL the sync daemon and the device app at random points.

A reference cloud runs in this process on loopback and keeps changing the site (members, tags,
templates, coupons) from a thread. Two child processes share one device replica: the *app* writes
visit and points events to the outbox (each in one transaction with its local effect), the
*daemon* pushes and pulls. Each iteration waits a random moment, SIGKILLs the daemon, the app or
both, and restarts them. At the end the cloud stops changing, one clean sync drains the outbox and
catches up, and the harness counts:

- lost: events committed on the device (their local-effect rows) that the cloud never recorded;
- duplicates: device events whose effect the cloud applied more than once (a points entry whose
  reason — unique per produced event — appears twice, or more visit rows than events);
- replica_matches: the replica's members, tags, templates (decrypted) and coupons equal the
  cloud's data for the site (same checksum).

    .venv/bin/python bench/crash_sync.py --iterations 200 --json

Bounded: every loop has an iteration or time limit; everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SITE, STORE = "site-crash", "store-crash-1"
APP_MEMBERS = [f"A{i}" for i in range(1, 11)]      # receive the app's events (points math stays exact)
CLOUD_MEMBERS = [f"C{i}" for i in range(1, 41)]    # changed by the cloud thread
DAY_MS = 24 * 3600 * 1000
KILL_AFTER_S = (0.3, 1.2)  # the children need ~0.4 s to import; kills land before, during and after
FINAL_SYNC_ROUNDS = 50


def _vector(seed: int) -> bytes:
    import numpy as np

    v = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


# -- child roles ---------------------------------------------------------------------------------

def _open(dirpath: Path):
    from sync.crypto import TemplateCipher
    from sync.replica import Replica

    return Replica(dirpath / "replica.db", TemplateCipher(dirpath / "identity"))


def role_daemon(dirpath: Path, cloud: str) -> None:
    """The sync daemon, with short timings; runs until killed."""
    from sync import daemon as d
    from sync.client import SyncClient

    d.PUSH_POLL_S, d.LONG_POLL_MS, d.BACKOFF_INITIAL_S, d.BACKOFF_MAX_S = 0.02, 300, 0.05, 0.3
    replica = _open(dirpath)
    daemon = d.SyncDaemon(replica, SyncClient(cloud, insecure=True), device_id="crash-dev", site_id=SITE,
                          store_id=STORE)
    daemon.run(threading.Event())


def role_app(dirpath: Path, seed: int) -> None:
    """The device app: a stream of visits and points events; runs until killed."""
    from device.gallery import Gallery
    from sync.outbox import Outbox

    replica = _open(dirpath)
    outbox = Outbox(replica)
    gallery, rev = Gallery(), None
    rng = random.Random(seed)
    with replica._lock:
        n = int(replica._conn.execute("SELECT count(*) FROM local_points").fetchone()[0])
    while True:
        member = rng.choice(APP_MEMBERS)
        if rng.random() < 0.5:
            outbox.visit(member, STORE, 0.95)
        else:
            n += 1
            outbox.points(member, rng.randint(1, 20), f"crash-{seed}-{n}")
        rev = gallery.refresh_from(replica, rev)  # the incremental reload runs (and dies) too
        time.sleep(rng.uniform(0.002, 0.02))


# -- the cloud side --------------------------------------------------------------------------------

def _seed(storage) -> None:
    from api.v1 import crm_pb2

    now = int(time.time() * 1000)
    storage.upsert_site(SITE, "crash site")
    storage.upsert_store(STORE, SITE, "crash store")
    for mid in APP_MEMBERS + CLOUD_MEMBERS:
        storage.upsert_member(member_id=mid, site_id=SITE, name=f"会员{mid}", points=1000)
    for i, mid in enumerate(CLOUD_MEMBERS):
        storage.add_consent(member_id=mid, device_id="seed", text_version="v1", consent_id=f"{mid}-c")
        storage.add_template(member_id=mid, consent_id=f"{mid}-c", model="dlib", vector=_vector(i),
                             template_id=f"{mid}-t0")
        storage.upsert_coupon(coupon_id=f"{mid}-cp", member_id=mid, title="券", kind=crm_pb2.COUPON_KIND_CASH,
                              value_cents=500, valid_from_ms=now - DAY_MS, valid_until_ms=now + 30 * DAY_MS)


def _mutate(storage, stop: threading.Event, seed: int) -> None:
    """Keep changing the site until `stop`: upserts and deletes on every stream."""
    from cloud_stub.errors import CloudError

    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        mid = rng.choice(CLOUD_MEMBERS)
        op = rng.random()
        try:
            if op < 0.3:
                storage.upsert_member(member_id=mid, site_id=SITE, name=f"会员{mid}-{n}", points=rng.randint(0, 9999))
            elif op < 0.55:
                storage.upsert_tag(tag_id=f"{mid}-tag{rng.randint(0, 4)}", member_id=mid, kind="activity",
                                   value=rng.choice(["活跃", "沉默", "睡眠"]))
            elif op < 0.7:
                storage.delete_tag(f"{mid}-tag{rng.randint(0, 4)}")
            elif op < 0.85:
                storage.add_template(member_id=mid, consent_id=f"{mid}-c", model="dlib",
                                     vector=_vector(1000 + n), template_id=f"{mid}-t{rng.randint(0, 3)}")
            else:
                storage.delete_template(f"{mid}-t{rng.randint(0, 3)}")
        except CloudError:
            pass  # deleting what is not there: the next change
        stop.wait(rng.uniform(0.002, 0.01))


def _checksum(rows: list[tuple]) -> str:
    h = hashlib.sha256()
    for r in sorted(rows):
        h.update(repr(r).encode())
    return h.hexdigest()


def _cloud_rows(storage) -> dict[str, str]:
    from cloud_stub.storage import STREAMS

    out = {}
    names = {1: "members", 2: "tags", 3: "templates", 4: "coupons"}
    for stream in STREAMS:
        rows, _ = storage.changes(stream, SITE, 0, 10**9)
        live = [r for _, _, deleted, r in rows if not deleted]
        out[names[stream]] = _checksum([_key(names[stream], r) for r in live])
    return out


def _key(table: str, r) -> tuple:
    if table == "members":
        return (r["member_id"], r["name"], r["tier"], int(r["points"]))
    if table == "tags":
        return (r["tag_id"], r["member_id"], r["kind"], r["value"])
    if table == "templates":
        return (r["template_id"], r["member_id"], bytes(r["vector"]))
    return (r["coupon_id"], r["member_id"], int(r["status"]), int(r["value_cents"]))


def _replica_rows(replica) -> dict[str, str]:
    out = {}
    with replica._lock:
        for table in ("members", "tags", "coupons"):
            rows = [dict(r) for r in replica._conn.execute(f"SELECT * FROM {table}")]
            out[table] = _checksum([_key(table, r) for r in rows])
    out["templates"] = _checksum([(t.template_id, t.member_id, t.vector.astype("<f4").tobytes())
                                  for t in replica.templates()])
    return out


# -- the harness ---------------------------------------------------------------------------------

def _spawn(role: str, dirpath: Path, extra: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", role, "--dir", str(dirpath), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=10)


def run(iterations: int, seed: int = 1, workdir: Path | None = None) -> dict:
    """Run the harness; returns the result dict."""
    from cloud_stub.server import start_server
    from cloud_stub.storage import SqliteStorage
    from sync import daemon as d
    from sync.client import SyncClient

    rng = random.Random(seed)
    tmp = tempfile.TemporaryDirectory(prefix="crash-sync-") if workdir is None else None
    root = Path(tmp.name) if tmp else workdir
    assert root is not None
    dev = root / "device"
    dev.mkdir(parents=True, exist_ok=True)
    db = root / "cloud.db"
    _seed(SqliteStorage(db))
    server = start_server(db, port=0)
    cloud = f"127.0.0.1:{server.port}"
    stop = threading.Event()
    mutator = threading.Thread(target=_mutate, args=(server.storage, stop, seed), name="crash-mutator")
    mutator.start()
    daemon_p = app_p = None
    kills = {"daemon": 0, "app": 0}
    try:
        for i in range(iterations):
            if daemon_p is None or daemon_p.poll() is not None:
                daemon_p = _spawn("daemon", dev, ["--cloud", cloud])
            if app_p is None or app_p.poll() is not None:
                app_p = _spawn("app", dev, ["--seed", str(seed * 100_000 + i)])
            time.sleep(rng.uniform(*KILL_AFTER_S))
            victim = rng.choice(["daemon", "app", "both"])
            if victim in ("daemon", "both"):
                _kill(daemon_p)
                kills["daemon"] += 1
            if victim in ("app", "both"):
                _kill(app_p)
                kills["app"] += 1
    finally:
        _kill(daemon_p)
        _kill(app_p)
        stop.set()
        mutator.join()

    # Quiet cloud: one clean daemon drains the outbox and catches up.
    replica = _open(dev)
    client = SyncClient(cloud, insecure=True)
    try:
        daemon = d.SyncDaemon(replica, client, device_id="crash-dev", site_id=SITE, store_id=STORE)
        for _ in range(FINAL_SYNC_ROUNDS):
            daemon.sync_once()
            if daemon.outbox.depth() == 0:
                break
        result = _verdict(replica, db, server.storage)
    finally:
        client.close()
        replica.close()
        server.stop(grace=0)
        if tmp:
            tmp.cleanup()
    result.update(iterations=iterations, kills=kills)
    return result


def _verdict(replica, db: Path, storage) -> dict:
    import sqlite3

    with replica._lock:
        conn = replica._conn
        visit_ids = {r[0] for r in conn.execute("SELECT event_id FROM local_visits")}
        points = {r[0]: int(r[1]) for r in conn.execute("SELECT event_id, delta FROM local_points")}
        outbox_left = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        quarantined = int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])
    cdb = sqlite3.connect(db)
    try:
        recorded = {r[0] for r in cdb.execute("SELECT event_id FROM device_events WHERE status = 1")}
        cloud_visits = [r[0] for r in cdb.execute("SELECT event_id FROM visits")]
        ledger = list(cdb.execute("SELECT entry_id, reason, delta FROM points_ledger"))
    finally:
        cdb.close()
    produced = visit_ids | set(points)
    lost = len(produced - recorded)
    reasons: dict[str, int] = {}
    for _, reason, _ in ledger:
        reasons[reason] = reasons.get(reason, 0) + 1
    duplicates = sum(c - 1 for c in reasons.values() if c > 1)
    duplicates += max(0, len(cloud_visits) - len(set(cloud_visits)))
    duplicates += len({r[0] for r in ledger} - set(points))  # ledger entries no device event explains
    cloud_sum = _cloud_rows(storage)
    replica_sum = _replica_rows(replica)
    return {"lost": lost, "duplicates": duplicates, "replica_matches": cloud_sum == replica_sum,
            "events": len(produced), "outbox_left": outbox_left, "quarantined": quarantined,
            "mismatched_tables": sorted(k for k in cloud_sum if cloud_sum[k] != replica_sum.get(k))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--role", choices=["daemon", "app"], help=argparse.SUPPRESS)
    p.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--cloud", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "daemon":
        role_daemon(args.dir, args.cloud)
        return 0
    if args.role == "app":
        role_app(args.dir, args.seed)
        return 0
    if args.iterations < 1:
        p.error("--iterations must be at least 1")
    t0 = time.monotonic()
    result = run(args.iterations, args.seed)
    result["seconds"] = round(time.monotonic() - t0, 1)
    out = {k: result[k] for k in ("iterations", "lost", "duplicates", "replica_matches")}
    if args.json:
        print(json.dumps({**out, "detail": {k: v for k, v in result.items() if k not in out}}))
    else:
        print(out, result)
    ok = result["lost"] == 0 and result["duplicates"] == 0 and result["replica_matches"]
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

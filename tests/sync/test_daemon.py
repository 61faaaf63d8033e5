"""The daemon against a real loopback cloud: long-poll delivery, incremental gallery, offline, status."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

import numpy as np

from device.gallery import Gallery
from sync.outbox import read_status
from tests.sync.conftest import STORE, vector

WAIT_S = 20.0


def wait_for(cond: Callable[[], bool], what: str) -> None:
    """Poll a condition on real data (the event happens in another thread or process)."""
    end = time.monotonic() + WAIT_S
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _running(daemon):
    stop = threading.Event()
    t = threading.Thread(target=daemon.run, args=(stop,), name="sync-daemon-test")
    t.start()
    return stop, t


def test_cloud_change_reaches_replica_and_gallery_incrementally(cloud, device, fast_timing, tmp_path):
    d = device()
    d.sync_once()
    gallery = Gallery()
    rev = gallery.refresh_from(d.replica)
    assert gallery.template_count == 5
    stop, t = _running(d)
    try:
        wait_for(lambda: d.status.caught_up_at is not None, "first catch-up")
        cloud.storage.upsert_member(member_id="M1", site_id="site-t", name="新名字", points=7)
        cloud.storage.add_template(member_id="M2", consent_id="M2-c", model="dlib", vector=vector(77),
                                   template_id="M2-t2")
        cloud.storage.delete_template("M3-t1")
        wait_for(lambda: (d.replica.member("M1") or {}).get("name") == "新名字", "member change")
        wait_for(lambda: {r.template_id for r in d.replica.templates()} >= {"M2-t2"}, "new template")
        wait_for(lambda: "M3-t1" not in {r.template_id for r in d.replica.templates()}, "template tombstone")
    finally:
        stop.set()
        t.join()
    rev2, changed, gone = d.replica.template_changes(rev)
    assert {c.template_id for c in changed} == {"M2-t2"} and gone == ["M3-t1"]
    rev = gallery.refresh_from(d.replica, rev)
    full = Gallery()
    full.load_from(d.replica)
    assert rev == rev2 and gallery.template_count == full.template_count == 5
    probe = vector(77)

    assert gallery.search(np.frombuffer(probe, "<f4"))[0] == full.search(np.frombuffer(probe, "<f4"))[0]
    assert gallery.search(np.frombuffer(probe, "<f4"))[0].member_id == "M2"


def test_offline_device_keeps_greeting_and_drains_when_the_cloud_returns(cloud, device, fast_timing):
    d = device()
    d.sync_once()
    cloud.stop()
    stop, t = _running(d)
    try:
        # The device still knows its members from the replica, and records every visit.
        gallery = Gallery()
        gallery.refresh_from(d.replica)
        hit = gallery.search(np.frombuffer(vector(1), "<f4"))[0]
        assert hit.member_id == "M1" and d.replica.member("M1")["name"] == "会员1"
        for i in range(30):
            d.outbox.visit(f"M{i % 5 + 1}", STORE, 0.96)
        d.outbox.points("M1", 5, "offline points")
        wait_for(lambda: d.status.state == "offline", "offline state")
        assert d.outbox.depth() == 31
        cloud.restart()
        wait_for(lambda: d.outbox.depth() == 0, "outbox drained")
        wait_for(lambda: d.status.state == "online", "online again")
    finally:
        stop.set()
        t.join()
    conn = sqlite3.connect(cloud.db)
    try:
        assert conn.execute("SELECT count(*) FROM visits").fetchone()[0] == 30
        assert conn.execute("SELECT points FROM members WHERE member_id = 'M1'").fetchone()[0] == 105
    finally:
        conn.close()
    status = read_status(d.replica)
    assert status["outbox_depth"] == 0 and status["state"] == "online"


def test_status_and_metrics_are_published(cloud, device, fast_timing, tmp_path):
    d = device(metrics_path=tmp_path / "sync.prom")
    d.outbox.visit("M1", STORE, 0.9)
    d.sync_once()
    status = read_status(d.replica)
    assert status["state"] == "online" and status["outbox_depth"] == 0 and status["lag_s"] < 60
    assert status["pushed"]["accepted"] == 1 and status["applied"]["members"] == 5
    text = (tmp_path / "sync.prom").read_text()
    assert 'joyedge_sync_online{device="dev-1"} 1.0' in text
    assert 'joyedge_sync_outbox_depth{device="dev-1"} 0.0' in text




"""A coupon used at this device and later given back by the cloud (by any route, not only this device's
refund) becomes usable here again through a real sync (sync/coupon_use.py)."""

from __future__ import annotations

import sqlite3
import time

from api.v1 import crm_pb2
from cloud_stub.marketing import unredeem
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.replica import Replica
from tests.sync.conftest import DAY_MS, STORE


def _usable(d: SyncDaemon, member: str = "M1") -> list[str]:
    return [c["coupon_id"] for c in d.replica.usable_coupons(member, STORE)]


def _used_here(d: SyncDaemon) -> list[str]:
    with d.replica.transaction() as conn:
        return [r[0] for r in conn.execute("SELECT coupon_id FROM local_redemptions ORDER BY coupon_id")]


def _give_back(cloud, coupon_id: str = "M1-cp", title: str = "10元券") -> None:
    """The operator re-issues the coupon in the cloud (no refund involved)."""
    now = int(time.time() * 1000)
    cloud.storage.upsert_coupon(coupon_id=coupon_id, member_id="M1", title=title, kind=crm_pb2.COUPON_KIND_CASH,
                                value_cents=1000, valid_from_ms=now - DAY_MS, valid_until_ms=now + 30 * DAY_MS,
                                status=crm_pb2.COUPON_STATUS_ISSUED)


def _cloud_status(cloud, coupon_id: str = "M1-cp") -> int:
    conn = sqlite3.connect(cloud.db)
    try:
        return int(conn.execute("SELECT status FROM coupons WHERE coupon_id = ?", (coupon_id,)).fetchone()[0])
    finally:
        conn.close()


def test_a_coupon_the_cloud_gives_back_is_usable_again_after_sync(cloud, device, fast_timing):
    """GIVEN a coupon used here, pushed, and seen REDEEMED WHEN the operator re-issues it in the cloud and
    the device pulls THEN the used-record is gone and the coupon is offered again."""
    d = device()
    d.pull_once()
    assert "M1-cp" in _usable(d)
    d.outbox.redemption("M1-cp", "M1", STORE, 5000)
    assert "M1-cp" not in _usable(d)
    d.push_once()
    d.pull_once()
    assert _cloud_status(cloud) == crm_pb2.COUPON_STATUS_REDEEMED
    assert _used_here(d) == ["M1-cp"] and "M1-cp" not in _usable(d)

    _give_back(cloud)
    d.pull_once()
    assert _used_here(d) == []
    assert "M1-cp" in _usable(d)
    # ...and it can be used here once more (the record is written again).
    d.outbox.redemption("M1-cp", "M1", STORE, 5000)
    assert "M1-cp" not in _usable(d)


def test_the_record_stays_while_the_use_is_still_queued(cloud, device, fast_timing):
    """GIVEN a coupon used here whose event is still in the outbox WHEN a newer ISSUED version arrives (an
    unrelated edit in the cloud) THEN the coupon stays hidden: the cloud has not seen this use yet."""
    d = device()
    d.pull_once()
    d.outbox.redemption("M1-cp", "M1", STORE, 5000)
    _give_back(cloud, title="10元券 (new title)")
    d.pull_once()
    assert _used_here(d) == ["M1-cp"] and "M1-cp" not in _usable(d)
    d.push_once()  # the cloud accepts the use (the coupon was issued there) ...
    d.pull_once()  # ... and its REDEEMED comes back: still hidden
    assert _cloud_status(cloud) == crm_pb2.COUPON_STATUS_REDEEMED
    assert _used_here(d) == ["M1-cp"] and "M1-cp" not in _usable(d)


def test_the_loser_of_a_double_redemption_sees_the_coupon_again_when_the_winner_refunds(
        cloud, device, fast_timing, tmp_path):
    """GIVEN two devices used one coupon offline, the first push won and the second got a compensation
    WHEN the winner's sale is refunded with the coupon given back (the cloud's unredeem) THEN after its
    next pull the losing device offers the coupon again (before: never)."""
    a = device(device_id="dev-1")
    rep = Replica(tmp_path / "dev2" / "replica.db", TemplateCipher(tmp_path / "dev2" / "id"))
    cli = SyncClient(cloud.address, insecure=True)
    try:
        b = SyncDaemon(rep, cli, device_id="dev-2", site_id="site-t", store_id=STORE)
        a.pull_once()
        b.pull_once()
        a.outbox.redemption("M1-cp", "M1", STORE, 5000)
        b.outbox.redemption("M1-cp", "M1", STORE, 5000)
        a.push_once()
        assert b.push_once()["compensations"] == 1
        b.pull_once()
        assert _used_here(b) == ["M1-cp"] and "M1-cp" not in _usable(b)

        conn = sqlite3.connect(cloud.db)
        try:
            (red_id,) = conn.execute("SELECT redemption_id FROM redemptions WHERE device_id = 'dev-1'").fetchone()
        finally:
            conn.close()
        with cloud.storage.transaction("refund at dev-1") as tx:
            assert unredeem.unredeem_in(tx, redemption_id=red_id, unredeem_id="ref-1.1",
                                        member_id="M1")["state"] == unredeem.RESTORED
        b.pull_once()
        assert _used_here(b) == []
        assert "M1-cp" in _usable(b)
    finally:
        cli.close()
        rep.close()


def test_a_snapshot_showing_the_coupon_issued_releases_the_record(cloud, device, fast_timing):
    """GIVEN a used, pushed coupon that the cloud then gave back WHEN the device takes a snapshot (a cloud
    restored from backup asks for one) instead of a pull THEN the record is released the same way."""
    d = device()
    d.pull_once()
    d.outbox.redemption("M1-cp", "M1", STORE, 5000)
    d.push_once()
    _give_back(cloud)
    d.snapshot_once()
    assert _used_here(d) == [] and "M1-cp" in _usable(d)

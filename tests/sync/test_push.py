"""Push over real gRPC: every event kind reaches the cloud's domain exactly once; rejects are
quarantined without blocking; a double redemption comes back as a compensation."""

from __future__ import annotations

import sqlite3

import grpc
import pytest

from api.v1 import sync_pb2, sync_pb2_grpc
from cloud_stub.member_qr import MemberQrKeys, key_dir_for
from tests.sync.conftest import STORE, vector


def _code(cloud, member_id: str) -> dict:
    """The membership QR an enrollment carries (the cloud checks it again), scanned now."""
    import time

    return {"member_code": MemberQrKeys(key_dir_for(cloud.db)).mint(cloud.storage, member_id),
            "code_scanned_at_ms": int(time.time() * 1000)}


def _count(cloud, sql: str, *args) -> int:
    conn = sqlite3.connect(cloud.db)
    try:
        return int(conn.execute(sql, args).fetchone()[0])
    finally:
        conn.close()


def test_every_event_kind_applies_once(cloud, device, fast_timing):
    d = device()
    ob = d.outbox
    ob.visit("M1", STORE, 0.97)
    ob.points("M1", 50, "face points")
    ob.payment("pay-1", "M1", STORE, 12_300)
    ob.redemption("M1-cp", "M1", STORE, 5000)
    ob.enrollment("M2", "M2-c2", "M2-t9", "dlib", vector(99), consent_text_version="v1", **_code(cloud, "M2"))
    d.replica.record_not_me("M3", "M3-t1", 0.95, 0.95, 0.5)
    ob.traffic(STORE, 1_700_000_000_000, 60_000, {"adult": 3, "child": 1})
    ob.consent("M4", granted=False)
    assert ob.depth() == 8
    totals = d.push_once()
    assert totals["accepted"] == 8 and ob.depth() == 0
    assert _count(cloud, "SELECT count(*) FROM visits WHERE member_id = 'M1'") == 1
    assert _count(cloud, "SELECT points FROM members WHERE member_id = 'M1'") == 150
    assert _count(cloud, "SELECT count(*) FROM transactions WHERE txn_id = 'pay-1'") == 1
    assert _count(cloud, "SELECT status FROM coupons WHERE coupon_id = 'M1-cp'") == 2  # REDEEMED
    assert _count(cloud, "SELECT count(*) FROM templates WHERE template_id = 'M2-t9'") == 1
    assert _count(cloud, "SELECT count(*) FROM face_feedback") == 1
    assert _count(cloud, "SELECT count(*) FROM traffic") == 1
    assert _count(cloud, "SELECT count(*) FROM templates WHERE member_id = 'M4'") == 0
    # The withdrawal took effect on the device at once, before any sync.
    assert all(t.member_id != "M4" for t in d.replica.templates())


def test_a_repeated_push_is_a_duplicate_and_changes_nothing(cloud, device, fast_timing):
    d = device()
    d.outbox.points("M1", 10, "x")
    events = d.outbox.pending()
    req = sync_pb2.PushRequest(device_id="dev-1", site_id="site-t", events=events, device_time_ms=0)
    first = d.client.push(req)
    # GIVEN the ack was lost (the device crashed before settling) WHEN it pushes again
    second = d.client.push(req)
    assert [a.status for a in first.acks] == [sync_pb2.ACK_STATUS_ACCEPTED]
    assert [a.status for a in second.acks] == [sync_pb2.ACK_STATUS_DUPLICATE]
    d.outbox.settle(events, second)
    assert d.outbox.depth() == 0
    assert _count(cloud, "SELECT points FROM members WHERE member_id = 'M1'") == 110


def test_rejected_events_are_quarantined_and_do_not_block(cloud, device, fast_timing):
    d = device()
    d.outbox.visit("NOPE", STORE, 0.99)          # unknown member
    d.outbox.visit("X1", STORE, 0.99)            # a member of another site
    d.outbox.points("M1", -10_000, "overspend")  # beyond the balance
    d.outbox.enrollment("M2", "no-such-consent", "M2-tx", "dlib", vector(5),  # no consent record
                        **_code(cloud, "M2"))
    d.outbox.visit("M1", STORE, 0.99)            # fine, behind the rejects
    totals = d.push_once()
    assert totals == {"accepted": 1, "duplicate": 0, "rejected": 4, "compensations": 0}
    q = d.outbox.quarantined()
    assert len(q) == 4 and all(r["reason"] for r in q)
    assert any("another" in r["reason"] or "not a member" in r["reason"] for r in q)
    assert any("consent" in r["reason"] for r in q)
    assert _count(cloud, "SELECT count(*) FROM visits") == 1
    assert _count(cloud, "SELECT count(*) FROM templates WHERE template_id = 'M2-tx'") == 0


def test_double_redemption_comes_back_as_a_compensation(cloud, device, fast_timing, tmp_path):
    a = device(device_id="dev-1")
    a.outbox.redemption("M1-cp", "M1", STORE, 5000)
    a.push_once()
    # A second device (its own replica) redeemed the same coupon while offline.
    from sync.client import SyncClient
    from sync.crypto import TemplateCipher
    from sync.daemon import SyncDaemon
    from sync.replica import Replica

    rep = Replica(tmp_path / "dev2" / "replica.db", TemplateCipher(tmp_path / "dev2" / "id"))
    cli = SyncClient(cloud.address, insecure=True)
    try:
        b = SyncDaemon(rep, cli, device_id="dev-2", site_id="site-t", store_id=STORE)
        b.outbox.redemption("M1-cp", "M1", STORE, 5000)
        totals = b.push_once()
        assert totals["compensations"] == 1
        (comp,) = b.outbox.compensations()
        assert comp["kind"] == "coupon_double_redemption" and comp["amount_cents"] == 1000
        assert "already been redeemed" in comp["message"]
    finally:
        cli.close()
        rep.close()


def test_events_of_a_stream_out_of_order_are_refused_whole(cloud, device, fast_timing):
    d = device()
    d.outbox.visit("M1", STORE, 0.9)
    d.outbox.visit("M2", STORE, 0.9)
    events = list(reversed(d.outbox.pending()))
    with grpc.insecure_channel(cloud.address) as ch:
        with pytest.raises(grpc.RpcError) as err:
            sync_pb2_grpc.SyncStub(ch).Push(sync_pb2.PushRequest(device_id="dev-1", site_id="site-t",
                                                                 events=events), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of order" in err.value.details()
    assert _count(cloud, "SELECT count(*) FROM visits") == 0

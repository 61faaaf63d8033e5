"""The coupon given back by a partial refund, end to end through the outbox and sync.

GIVEN a real cloud process (stopped for an offline sale, started again), an enrolled and synced π-POS
flagship (real replica, outbox and `joyedge sync`), and a member holding a threshold coupon
WHEN (1) the member pays OFFLINE and the cashier refunds part of the sale before it synced, so that
what is kept falls below the threshold — the refund goes through the outbox with the coupon's
``restore_redemption_id`` — and the push is then cut after the cloud applied it (re-pushed by the next
sync); or (2) the member pays ONLINE and the partial refund reaches the cloud (Payment.Refund) before
the sale's redemption event does ("waiting"), the redemption arriving with the next sync
THEN the cloud gives the coupon back exactly once (one coupon_unredemptions row, the coupon ISSUED with
one new seq, unchanged by the re-push and by a later refund of the rest), the money is booked once
(refund rows = what the device refunded), and the member's coupon is usable at the counter after sync.
"""

from __future__ import annotations

import re
import time

import pytest

from api.v1 import crm_pb2, marketing_pb2
from device.config import load_config
from device.pos import store
from device.pos.receipt import qr_text
from tests.pos.conftest import cli, counter_app, enroll_device, push_unsettled, retire_coupon
from tests.pos.test_double_redemption import _issue
from tests.pos.test_offline_refund_audit import _NoDepth, _pay
from tests.pos.test_pay_by_face import Screens

AMOUNT, THRESHOLD, REFUND = 15_000, 12_000, 5_000
ACCEPTED = marketing_pb2.REDEMPTION_STATUS_ACCEPTED
OFFLINE_COUPON = ("满120减25券", 2_500)  # different values: each sale picks its own test's coupon
WAITING_COUPON = ("满120减30券", 3_000)


@pytest.fixture(scope="module")
def pos(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("refund-coupon-sync")
    member = cloud.member("intel_head_pose")["member_id"]
    stamp = int(time.time())
    coupons = {title: (f"{member}-rc{value}-{stamp}", value) for title, value in (OFFLINE_COUPON, WAITING_COUPON)}
    cfg_file = enroll_device(cloud, root, "pos-flagship")
    try:
        with counter_app(load_config(cfg_file), Screens(), depth=_NoDepth()) as app:
            assert app.refresh_credit(force=True) >= 1
            yield cfg_file, app, member, {title: cid for title, (cid, _) in coupons.items()}
    finally:
        for title, (cid, value) in coupons.items():
            retire_coupon(cloud, member, cid, title, value, THRESHOLD)


def _issue_and_sync(cloud, cfg_file, member: str, coupons: dict[str, str], which: tuple[str, int]) -> str:
    """Issue the test's coupon now (a later test's bigger coupon must not exist yet) and pull it."""
    coupon = coupons[which[0]]
    _issue(cloud, member, coupon, which[0], which[1], THRESHOLD)
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")  # also: nothing of earlier tests left to push
    return coupon


def _coupon(cloud, coupon_id: str) -> tuple[int, int]:
    """(status, seq) of the coupon in the cloud."""
    return cloud.query("SELECT status, seq FROM coupons WHERE coupon_id = ?", coupon_id)[0]


def _unredemptions(cloud, sale_id: str) -> list[tuple]:
    return cloud.query("SELECT unredeem_id, state FROM coupon_unredemptions WHERE redemption_id = ?",
                       f"red-{sale_id}")


def _refund(app, sale_id: str, cents: int, seq: int) -> dict:
    app.handle("pos-cashier", {"action": "refund", "code": qr_text(sale_id)})
    app.handle("pos-cashier", {"action": "refund_amount", "sale": sale_id, "cents": cents, "seq": seq})
    done = [r for r in store.refunds(app.replica, sale_id) if r["seq"] == seq]
    assert done and done[0]["state"] == "done", app.refund_message
    app.handle("pos-cashier", {"action": "refund_close"})
    return done[0]


def _usable_here(app, member: str, coupon_id: str) -> bool:
    return coupon_id in [c["coupon_id"] for c in app.replica.usable_coupons(member, app.store_id)]


def _replica_coupon_status(app, coupon_id: str) -> int:
    with app.replica._lock:
        return int(app.replica._conn.execute("SELECT status FROM coupons WHERE coupon_id = ?",
                                             (coupon_id,)).fetchone()[0])


def test_offline_sale_partial_refund_gives_the_coupon_back_once_through_the_outbox(pos, cloud, tmp_path):
    cfg_file, app, member, coupons = pos
    coupon = _issue_and_sync(cloud, cfg_file, member, coupons, OFFLINE_COUPON)
    cloud.stop()
    try:
        out = _pay(app, tmp_path, AMOUNT)
    finally:
        cloud.start()
    assert out["state"] == "paid", out["message"]
    sale = out["sale"]
    sid, paid, value = sale["sale_id"], sale["paid_cents"], OFFLINE_COUPON[1]
    assert (sale["mode"], sale["coupon_id"], paid) == ("offline", coupon, AMOUNT - value), sale
    assert not _usable_here(app, member, coupon)  # used here, not yet synced
    status0, seq0 = _coupon(cloud, coupon)
    assert status0 == crm_pb2.COUPON_STATUS_ISSUED  # the cloud has not heard of the sale

    # Refund 50.00 before the sale synced: 75.00 paid is kept, 90.00 at list price (75 × 150 / 125), below
    # the 120.00 threshold: the discount on it is kept back and the coupon goes back (via the outbox).
    kept = paid - REFUND
    clawback = kept * value // paid
    row = _refund(app, sid, REFUND, 1)
    assert (row["path"], row["coupon"], row["clawback_cents"], row["amount_cents"]) == (
        "outbox", "restored", clawback, REFUND - clawback)
    net = REFUND - clawback
    assert _usable_here(app, member, coupon)  # the redemption never synced: usable here again at once
    with app.replica._lock:
        streams = [(r[0], r[1]) for r in app.replica._conn.execute(
            "SELECT stream, kind FROM outbox ORDER BY id")]
    assert ("payments", "payment") in streams and ("coupons", "redemption") in streams
    assert [k for s, k in streams if s == "payments"] == ["payment", "payment"]  # the sale, then its refund

    # The push is cut after the cloud applied it: sale, redemption, refund, coupon back — once.
    push_unsettled(cloud, cfg_file, app.replica)
    status1, seq1 = _coupon(cloud, coupon)
    assert status1 == crm_pb2.COUPON_STATUS_ISSUED and seq1 > seq0
    assert _unredemptions(cloud, sid) == [(f"ref-{sid}.1", "restored")]
    assert cloud.query("SELECT status FROM redemptions WHERE redemption_id = ?", f"red-{sid}") == [(ACCEPTED,)]
    # The next sync pushes the same events again: all DUPLICATE, nothing applied twice.
    text = cli("joyedge", "sync", "--config", str(cfg_file), "--once").stdout
    assert int(re.search(r"duplicate (\d+)", text).group(1)) >= 4, text  # payment, points, redemption, refund…
    assert _coupon(cloud, coupon) == (status1, seq1)
    assert _unredemptions(cloud, sid) == [(f"ref-{sid}.1", "restored")]
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [
        (f"ref-{sid}.1", net)]
    # The member sees the coupon after the sync: the replica holds the cloud's ISSUED and it is usable.
    assert _replica_coupon_status(app, coupon) == crm_pb2.COUPON_STATUS_ISSUED
    assert _usable_here(app, member, coupon)
    with app.replica._lock:
        assert app.replica._conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0

    # The rest of the sale (online now: the sale synced) asks nothing more of the coupon.
    left = paid - net
    assert left == kept + clawback  # what was kept, at full price
    row2 = _refund(app, sid, left, 2)
    assert (row2["path"], row2["coupon"], row2["clawback_cents"]) == ("online", "", 0)
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert _coupon(cloud, coupon) == (status1, seq1)
    assert cloud.query("SELECT count(*) FROM coupon_unredemptions WHERE redemption_id = ?", f"red-{sid}") == [(ACCEPTED,)]
    assert cloud.query("SELECT sum(amount_cents) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(paid,)]
    assert app.audit.verify([sale["anchor"]]).ok


def test_refund_before_its_redemption_waits_and_the_coupon_comes_back_once_when_it_arrives(pos, cloud, tmp_path):
    cfg_file, app, member, coupons = pos
    coupon = _issue_and_sync(cloud, cfg_file, member, coupons, WAITING_COUPON)
    out = _pay(app, tmp_path, AMOUNT)  # online: the payment is in the cloud, the redemption in the outbox
    assert out["state"] == "paid", out["message"]
    sale = out["sale"]
    sid, paid, value = sale["sale_id"], sale["paid_cents"], WAITING_COUPON[1]
    assert (sale["mode"], sale["coupon_id"], paid) == ("online", coupon, AMOUNT - value), sale
    status0, seq0 = _coupon(cloud, coupon)
    assert cloud.query("SELECT count(*) FROM redemptions WHERE redemption_id = ?", f"red-{sid}") == [(0,)]

    # The partial refund goes to the cloud at once (Payment.Refund) and asks for the coupon back before
    # the cloud has the redemption: the ask waits; the coupon is not touched yet.
    kept = paid - REFUND
    clawback = kept * value // paid
    row = _refund(app, sid, REFUND, 1)
    assert (row["path"], row["coupon"], row["clawback_cents"]) == ("online", "restored", clawback)
    assert _unredemptions(cloud, sid) == [(f"ref-{sid}.1", "waiting")]
    assert _coupon(cloud, coupon) == (status0, seq0)
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [
        (f"ref-{sid}.1", REFUND - clawback)]
    assert _usable_here(app, member, coupon)  # given back here at once (the device decided)

    # The redemption arrives (push cut before the ack): recorded, then the waiting ask applies — once.
    push_unsettled(cloud, cfg_file, app.replica)
    status1, seq1 = _coupon(cloud, coupon)
    assert status1 == crm_pb2.COUPON_STATUS_ISSUED and seq1 > seq0
    assert _unredemptions(cloud, sid) == [(f"ref-{sid}.1", "restored")]
    assert cloud.query("SELECT status FROM redemptions WHERE redemption_id = ?", f"red-{sid}") == [(ACCEPTED,)]
    # Re-pushed by the next sync (DUPLICATE): nothing moves.
    text = cli("joyedge", "sync", "--config", str(cfg_file), "--once").stdout
    assert int(re.search(r"duplicate (\d+)", text).group(1)) >= 2, text  # points, redemption
    assert _coupon(cloud, coupon) == (status1, seq1)
    assert _unredemptions(cloud, sid) == [(f"ref-{sid}.1", "restored")]
    assert _replica_coupon_status(app, coupon) == crm_pb2.COUPON_STATUS_ISSUED
    assert _usable_here(app, member, coupon)

    # Refunding the rest gives nothing back a second time.
    row2 = _refund(app, sid, paid - (REFUND - clawback), 2)
    assert row2["coupon"] == "" and row2["clawback_cents"] == 0
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert _coupon(cloud, coupon) == (status1, seq1)
    assert cloud.query("SELECT count(*) FROM coupon_unredemptions WHERE redemption_id = ?", f"red-{sid}") == [(ACCEPTED,)]
    assert cloud.query("SELECT sum(amount_cents) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(paid,)]

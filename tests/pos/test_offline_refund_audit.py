"""Offline pay-by-face within the JOY-CRED limit, refunds by receipt QR, cash and the drawer, and the
audit log's tamper evidence — against a real cloud process that is stopped and started again."""

from __future__ import annotations

import sqlite3

import pytest

from device.config import load_config
from device.pos import store
from device.pos.receipt import qr_text
from tests.pos.conftest import cli, counter_app, enroll_device
from tests.pos.test_pay_by_face import MEMBER_PHOTO, Screens, _attempt


@pytest.fixture(scope="module")
def pos(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("pos-offline")
    cfg_file = enroll_device(cloud, root, "pos-flagship")
    with counter_app(load_config(cfg_file), Screens(), depth=_NoDepth()) as app:
        yield cfg_file, app


class _NoDepth:
    """Placeholder until an attempt installs its registered depth replay."""

    def open(self) -> None: ...

    def close(self) -> None: ...


def _pay(app, tmp_path, amount):
    state = _attempt(app, tmp_path, MEMBER_PHOTO, relief_mm=25.0, amount_cents=amount)
    if state == "phone":
        app.handle("pos-customer", {"action": "phone", "digits": app.replica.member(
            app.audit.entries("face")[-1]["data"]["candidates"][0][0])["phone_last4"]})
    app.handle("pos-customer", {"action": "confirm"})
    return app.checkout.outcome()


def test_offline_within_limit_pays_over_limit_refused_and_the_payment_reaches_the_ledger(pos, cloud, tmp_path):
    cfg_file, app = pos
    member = cloud.member("intel_head_pose")["member_id"]
    assert app.refresh_credit(force=True) >= 1  # the background refresh caches the offline limits
    limit = store.credit(app.replica, member)["offline_limit_cents"]
    assert limit > 0, "the demo member needs a JOY-CRED grade with an offline limit"
    cloud.stop()
    try:
        out = _pay(app, tmp_path, min(limit // 2, 20000))
        assert out["state"] == "paid", out["message"]
        sale = out["sale"]
        assert sale["mode"] == "offline" and app.offline
        assert app.audit.entries("sale")[-1]["data"]["mode"] == "offline"
        # Within the limit on its own, over it with the first payment not yet settled (coupon-proof).
        coupon = max([c["value_cents"] for c in app.replica.usable_coupons(member, app.store_id)] + [0])
        over = _pay(app, tmp_path, limit - sale["paid_cents"] + coupon + 100)
        assert over["state"] == "refused" and "离线额度" in over["message"], over
        assert over["due_cents"] <= limit
        assert len([s for s in store.sales(app.replica) if s["mode"] == "offline"]) == 1
    finally:
        cloud.start()
    assert cloud.query("SELECT count(*) FROM transactions WHERE txn_id = ?", sale["payment_id"]) == [(0,)]
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert cloud.query("SELECT member_id, amount_cents FROM transactions WHERE txn_id = ?", sale["payment_id"]) == [
        (member, sale["paid_cents"])]
    with app.replica._lock:
        assert store.offline_outstanding(app.replica._conn, member) == 0  # acked: the limit is free again


def test_refund_by_scanning_the_receipt_qr(pos, cloud, tmp_path):
    _, app = pos
    out = _pay(app, tmp_path, 3000)
    assert out["state"] == "paid" and out["sale"]["mode"] == "online", out["message"]
    sale = out["sale"]
    app.scanner.scan(qr_text(sale["sale_id"]))
    app.step()  # the scanner read queues the scan …
    app.step()  # … and the next turn opens the sale on the cashier screen
    assert app.refunding["sale_id"] == sale["sale_id"] and app.refunding["left_cents"] == sale["paid_cents"]
    assert store.sale(app.replica, sale["sale_id"])["status"] == "paid"  # nothing refunded by the scan alone
    app.handle("pos-cashier", {"action": "refund_amount", "sale": sale["sale_id"], "cents": sale["paid_cents"],
                               "seq": app.refunding["next_seq"]})
    assert store.sale(app.replica, sale["sale_id"])["status"] == "refunded"
    assert cloud.query("SELECT status, refunded_cents FROM payments WHERE payment_id = ?", sale["payment_id"]) == [
        (4, sale["paid_cents"])]
    assert "退款凭证".encode("gb18030") in app.printer.jobs()
    # Scanning it again refunds nothing more.
    app.scanner.scan(qr_text(sale["sale_id"]))
    app.step()
    app.step()
    assert app.refunding["left_cents"] == 0
    app.handle("pos-cashier", {"action": "refund_amount", "sale": sale["sale_id"], "cents": 100,
                               "seq": app.refunding["next_seq"]})
    assert "already refunded" in app.refund_message
    assert cloud.query("SELECT count(*) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(1,)]
    # A code that is not one of this device's receipts is refused.
    assert app.refund(qr_text("sale-00000000-0000-0000-0000-000000000000")) is None
    assert "not a sale of this device" in app.refund_message


def test_cash_sale_opens_the_drawer_and_prints(pos):
    _, app = pos
    app.handle("pos-cashier", {"action": "new"})
    app.handle("pos-cashier", {"action": "amount", "cents": 1550})
    printed_before = len(app.printer.jobs())
    app.handle("pos-cashier", {"action": "cash"})
    app.handle("pos-cashier", {"action": "cash"})  # pressed twice: one sale
    sale = app.checkout.outcome()["sale"]
    assert sale["mode"] == "cash" and sale["paid_cents"] == 1550
    job = app.printer.jobs()[printed_before:]
    assert b"15.50" in job and job.count(b"\x1bp") == 1  # one drawer kick (ESC p)
    assert sum(1 for s in store.sales(app.replica) if s["idempotency_key"] == sale["idempotency_key"]) == 1


def test_tampering_with_the_audit_log_is_detected(pos, tmp_path):
    _, app = pos
    if len(app.audit.entries()) < 4:
        app.handle("pos-cashier", {"action": "new"})
        app.handle("pos-cashier", {"action": "amount", "cents": 100})
        app.handle("pos-cashier", {"action": "cash"})
    assert app.audit.verify().ok
    anchors = [s["anchor"] for s in store.sales(app.replica)]
    rows = app.audit.entries()
    victim = next(e for e in rows if e["kind"] == "sale")
    db = sqlite3.connect(app.replica.path)
    try:
        # 1. Rewriting what a decision said (say, a refused liveness into a passed one).
        original = db.execute("SELECT data FROM pos_audit WHERE seq = ?", (victim["seq"],)).fetchone()[0]
        db.execute("UPDATE pos_audit SET data = replace(data, '\"paid_cents\":', '\"paid_cents\":1') WHERE seq = ?",
                   (victim["seq"],))
        db.commit()
        check = app.audit.verify()
        assert not check.ok and check.bad_seq == victim["seq"] and "changed" in check.reason
        db.execute("UPDATE pos_audit SET data = ? WHERE seq = ?", (original, victim["seq"]))
        db.commit()
        assert app.audit.verify(anchors).ok
        # 2. Deleting an entry in the middle.
        middle = rows[len(rows) // 2]["seq"]
        saved = db.execute("SELECT * FROM pos_audit WHERE seq = ?", (middle,)).fetchone()
        db.execute("DELETE FROM pos_audit WHERE seq = ?", (middle,))
        db.commit()
        assert not app.audit.verify().ok and app.audit.verify().bad_seq == middle
        db.execute("INSERT INTO pos_audit VALUES (?, ?, ?, ?, ?, ?)", saved)
        db.commit()
        # 3. Cutting the tail: the chain left is valid, but the last receipt's anchor is gone from it.
        last_sale = max((e for e in app.audit.entries() if e["kind"] == "sale"), key=lambda e: e["seq"])
        db.execute("DELETE FROM pos_audit WHERE seq >= ?", (last_sale["seq"],))
        db.commit()
        assert app.audit.verify().ok  # on its own a shorter chain looks fine …
        check = app.audit.verify(anchors)
        assert not check.ok and "anchor" in check.reason  # … the receipts prove the cut
    finally:
        db.close()

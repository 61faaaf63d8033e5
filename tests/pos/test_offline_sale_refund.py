"""Refunds of sales paid by face while the cloud was unreachable, by scanning the receipt QR.

GIVEN a real cloud process (stopped to make the π-POS go offline, started again), an enrolled and
synced π-POS flagship with fake printer/scanner/drawer and a member paying offline within their
JOY-CRED limit
WHEN the cashier scans the receipt QR before the sale has synced, after it has synced, or the app is
killed between the local refund and the push
THEN the refund is recorded once locally (points taken back, offline exposure freed, audited, 退款
slip printed), the cloud applies the sale and then the refund exactly once, a second refund and an
over-refund are refused, and an unknown code gets a clear message.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from device.config import load_config
from device.pos import store
from device.pos.payment import PaymentError
from device.pos.receipt import qr_text
from tests.pos.conftest import cli, counter_app, enroll_device, push_unsettled
from tests.pos.test_offline_refund_audit import _NoDepth, _pay
from tests.pos.test_pay_by_face import Screens

PURCHASE, RETURN = 1, 2  # crm_service TransactionKind

# What the child process runs: the device's own refund path on the device's own replica file, then it
# is killed (SIGKILL, no cleanup) before anything could push the outbox.
_KILLED_REFUND = """
import os, signal, sys
from pathlib import Path
from device.assemble import open_replica
from device.config import load_config
from device.pos.audit import AuditLog
from device.pos.refund import refund_by_qr
cfg = load_config(Path(sys.argv[1]))
replica = open_replica(cfg)
out = refund_by_qr(replica, AuditLog(replica), None, sys.argv[2], store_id=cfg.device.store_id)
print(out["refund_path"], out["refund_cents"], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture(scope="module")
def pos(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("pos-offline-refund")
    cfg_file = enroll_device(cloud, root, "pos-flagship")
    with counter_app(load_config(cfg_file), Screens(), depth=_NoDepth()) as app:
        assert app.refresh_credit(force=True) >= 1
        yield cfg_file, app


def _offline_sale(app, cloud, tmp_path, cents: int) -> dict:
    """A face payment taken while the cloud is down; the cloud is running again on return."""
    cloud.stop()
    try:
        out = _pay(app, tmp_path, cents)
    finally:
        cloud.start()
    assert out["state"] == "paid" and out["sale"]["mode"] == "offline", out
    return out["sale"]


def _scan(app, sale_id: str) -> None:
    """The cashier scans the receipt (the sale opens) and refunds everything left, as the page does."""
    app.handle("pos-cashier", {"action": "refund", "code": qr_text(sale_id)})
    if app.refunding is not None:
        rf = app.refunding
        seq = rf["pending"]["seq"] if rf["pending"] else rf["next_seq"]
        app.handle("pos-cashier", {"action": "refund_amount", "sale": sale_id, "cents": max(rf["left_cents"], 1),
                                   "seq": seq})


def _payments_stream(app) -> list[tuple[str, int]]:
    with app.replica._lock:
        return [(r[0], r[1]) for r in app.replica._conn.execute(
            "SELECT kind, stream_seq FROM outbox WHERE stream = 'payments' ORDER BY id")]


def _points(cloud, member: str) -> int:
    return cloud.query("SELECT points FROM members WHERE member_id = ?", member)[0][0]


def _ledger(cloud, sale: dict) -> list[tuple]:
    return cloud.query("SELECT txn_id, kind, amount_cents FROM transactions WHERE txn_id IN (?, ?) ORDER BY kind",
                       sale["payment_id"], f"ref-{sale['sale_id']}.1")


def test_refund_before_sync_is_queued_and_the_cloud_applies_sale_then_refund_once(pos, cloud, tmp_path):
    cfg_file, app = pos
    member = cloud.member("intel_head_pose")["member_id"]
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    points_before = _points(cloud, member)
    cloud.stop()
    try:
        sale = _pay(app, tmp_path, 4200)["sale"]
        assert sale["mode"] == "offline"
        with app.replica._lock:
            assert store.offline_outstanding(app.replica._conn, member) == sale["paid_cents"]
        printed = len(app.printer.jobs())
        _scan(app, sale["sale_id"])  # the cloud is still down
        after = store.sale(app.replica, sale["sale_id"])
        assert after["status"] == "refunded" and after["refunded_cents"] == sale["paid_cents"], app.refund_message
        assert "离线" in app.refund_message
        slip = app.printer.jobs()[printed:]
        assert "退款凭证".encode("gb18030") in slip and "离线退款".encode("gb18030") in slip
        assert sale["paid_cents"] // 100 and f"{sale['paid_cents'] // 100}.".encode() in slip
        with app.replica._lock:  # the offline limit is free again at once
            assert store.offline_outstanding(app.replica._conn, member) == 0
        assert [k for k, _ in _payments_stream(app)] == ["payment", "payment"]  # the sale, then its refund
        entry = app.audit.entries("refund")[-1]["data"]
        assert entry["path"] == "outbox" and entry["amount_cents"] == sale["paid_cents"]
        _scan(app, sale["sale_id"])  # a second scan refunds nothing
        assert "already refunded" in app.refund_message
        assert cloud.query("SELECT 1") == [(1,)]  # (the cloud's file is readable while it is down)
        assert _ledger(cloud, sale) == []
    finally:
        cloud.start()
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    paid = sale["paid_cents"]
    assert _ledger(cloud, sale) == [(sale["payment_id"], PURCHASE, paid), (f"ref-{sale['sale_id']}.1", RETURN, paid)]
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [
        (f"ref-{sale['sale_id']}.1", paid)]
    assert _points(cloud, member) == points_before  # earned and taken back
    assert _payments_stream(app) == []
    # A re-sync changes nothing; an online refund of the same sale is the same refund (idempotent id);
    # a refund beyond what is left is refused by the cloud.
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    app.gateway.refund(f"ref-{sale['sale_id']}.1", sale["payment_id"], paid)
    with pytest.raises(PaymentError, match="only 0 are left"):
        app.gateway.refund(f"ref2-{sale['sale_id']}", sale["payment_id"], 1)
    assert len(_ledger(cloud, sale)) == 2
    assert cloud.query("SELECT count(*) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(1,)]
    assert app.audit.verify([sale["anchor"]]).ok


def test_refund_after_sync_goes_online(pos, cloud, tmp_path):
    cfg_file, app = pos
    member = cloud.member("intel_head_pose")["member_id"]
    sale = _offline_sale(app, cloud, tmp_path, 3300)
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    points_before = _points(cloud, member)
    assert _ledger(cloud, sale) == [(sale["payment_id"], PURCHASE, sale["paid_cents"])]
    _scan(app, sale["sale_id"])
    assert store.sale(app.replica, sale["sale_id"])["status"] == "refunded", app.refund_message
    assert app.audit.entries("refund")[-1]["data"]["path"] == "online"
    # Refunded in the cloud at once (no refund event queued; only the points reversal waits for sync).
    assert _ledger(cloud, sale)[-1] == (f"ref-{sale['sale_id']}.1", RETURN, sale["paid_cents"])
    assert _payments_stream(app) == []
    _scan(app, sale["sale_id"])
    assert "already refunded" in app.refund_message
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert _points(cloud, member) == points_before - sale["points"]
    assert cloud.query("SELECT count(*) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(1,)]


def test_app_killed_between_the_local_refund_and_the_push_loses_nothing_and_doubles_nothing(pos, cloud, tmp_path):
    cfg_file, app = pos
    sale = _offline_sale(app, cloud, tmp_path, 2100)  # not synced yet
    child = subprocess.run([sys.executable, "-c", _KILLED_REFUND, str(cfg_file), qr_text(sale["sale_id"])],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert child.stdout.split() == ["outbox", str(sale["paid_cents"])]
    # The refund survived the kill with its events; the app's next scan sees it.
    assert store.sale(app.replica, sale["sale_id"])["status"] == "refunded"
    assert [k for k, _ in _payments_stream(app)] == ["payment", "payment"]
    _scan(app, sale["sale_id"])
    assert "already refunded" in app.refund_message
    assert app.audit.verify([sale["anchor"]]).ok
    # The push is cut after the cloud applied it but before the device settled it (the daemon killed
    # mid-push): the same events go again and are answered DUPLICATE.
    push_unsettled(cloud, cfg_file, app.replica)
    assert _payments_stream(app) != []  # not settled: still in the outbox
    out = cli("joyedge", "sync", "--config", str(cfg_file), "--once").stdout
    assert int(re.search(r"duplicate (\d+)", out).group(1)) >= 3, out  # payment, points, refund (…)
    paid = sale["paid_cents"]
    assert _ledger(cloud, sale) == [(sale["payment_id"], PURCHASE, paid), (f"ref-{sale['sale_id']}.1", RETURN, paid)]
    assert cloud.query("SELECT count(*) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(1,)]
    assert _payments_stream(app) == []


def test_unknown_codes_get_a_clear_message(pos):
    _, app = pos
    app.handle("pos-cashier", {"action": "refund", "code": "6901234567892"})
    assert "not a receipt QR" in app.refund_message and "二维码" in app.refund_message
    assert app.refund(qr_text("sale-00000000-0000-0000-0000-000000000000")) is None
    assert "not a sale of this device" in app.refund_message
    assert app.audit.entries("refund")[-1]["data"]["refused"] == "this receipt is not a sale of this device"

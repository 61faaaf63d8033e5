"""A difference settled at the counter is settled in the cloud too, and the other way.

GIVEN a real cloud process and two enrolled, synced π-POS flagships (B, the counter whose offline coupon
use lost against the member's own online redemption, and A, another counter of the same store), and for
each test a fresh flagged sale of B: an 88 yuan coupon used offline at B while the member used it in the
mini-program, so B's `joyedge sync --once` brings back a compensation and B's cashier sees the item.
THEN (a) the cashier's 已补收 closes it in the cloud with the counter's note after the next sync, once;
(b) the operator's `reconcile close` closes it on the counter after the counter's next sync (audited,
gone from the cashier's screen), once; (c) when both close before hearing of each other the first close
stands on each side and nothing errors; (d) another counter cannot close it: its event is quarantined
with the reason and the cloud is unchanged.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from api.v1 import sync_pb2
from cloud_stub.marketing import redeem
from cloud_stub.storage import SqliteStorage
from device.config import load_config
from device.pos import reconcile
from sync.outbox import Outbox, enqueue
from tests.pos.conftest import BIN, cli, counter_app, enroll_device
from tests.pos.test_double_redemption import _issue
from tests.pos.test_offline_refund_audit import _NoDepth, _pay

COUNTER_NOTE = "已在收银台补收 · collected at counter {device} (cashier)"


@pytest.fixture(scope="module")
def counters(cloud, tmp_path_factory):
    """Counters A and B with their published cashier screens (the last model of each is kept)."""
    root = tmp_path_factory.mktemp("reconcile-sync")
    member = cloud.member("intel_head_pose")["member_id"]
    made = {}
    with contextlib.ExitStack() as stack:
        for name in ("A", "B"):
            cfg_file = enroll_device(cloud, root, "pos-flagship")
            screens: dict[str, dict] = {}
            app = stack.enter_context(counter_app(load_config(cfg_file), screens.__setitem__, depth=_NoDepth()))
            assert app.refresh_credit(force=True) >= 1
            made[name] = (cfg_file, app, screens, load_config(cfg_file).device.id)
        yield made | {"member": member}


def _sync(cfg: Path) -> str:
    return cli("joyedge", "sync", "--config", str(cfg), "--once").stdout


def _flagged_sale(cloud, counters, tmp_path: Path, tag: str) -> tuple[dict, dict]:
    """A sale of B whose coupon the member also used online: B's sync brings the compensation, B's
    app turns it into an open item. Returns (sale, item)."""
    cfg_b, b, _, _ = counters["B"]
    member = counters["member"]
    coupon = f"{member}-rs-{tag}"
    _issue(cloud, member, coupon, "88元现金券", 8800, 0)
    _sync(cfg_b)
    cloud.stop()
    try:
        sale = _pay(b, tmp_path, 9900)["sale"]
    finally:
        cloud.start()
    assert sale["mode"] == "offline" and sale["coupon_id"] == coupon, sale
    storage = SqliteStorage(cloud.db)
    try:
        redeem.redeem(storage, redemption_id=f"mp-rs-{tag}", coupon_id=coupon, member_id=member,
                      store_id=cloud.report["store_ids"][0], device_id="mini-program", order_amount_cents=20000)
    finally:
        storage.close()
    _sync(cfg_b)
    (item,) = b.reconcile(force=True)
    assert item["sale_id"] == sale["sale_id"] and item["state"] == "open"
    return sale, item


def _listed(cloud, comp_id: str) -> dict:
    every = json.loads(cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db), "--all", "--json").stdout)
    (mine,) = [i for i in every if i["id"] == comp_id]
    return mine


def _cloud_state(cloud) -> tuple[list[tuple], list[tuple]]:
    """The cloud rows a close can touch: closures and the device events' acks."""
    return (cloud.query("SELECT * FROM reconcile_closures ORDER BY compensation_id"),
            cloud.query("SELECT event_id, kind, status, reason FROM device_events ORDER BY event_id"))


def _device_rows(app) -> tuple[list[tuple], ...]:
    with app.replica._lock:
        conn = app.replica._conn
        return tuple([tuple(r) for r in conn.execute(sql).fetchall()] for sql in (
            "SELECT * FROM pos_reconciliation ORDER BY compensation_id",
            "SELECT compensation_id, kind, cause_event_id, message, seen FROM compensations ORDER BY compensation_id",
            "SELECT event_id, kind FROM outbox ORDER BY id", "SELECT event_id, reason FROM quarantine",
            "SELECT seq, kind FROM pos_audit ORDER BY seq"))


def _outbox_reconciliations(app) -> list[sync_pb2.ReconciliationEvent]:
    with app.replica._lock:
        rows = app.replica._conn.execute("SELECT body FROM outbox WHERE kind = 'reconciliation' ORDER BY id").fetchall()
    return [sync_pb2.DeviceEvent.FromString(r[0]).reconciliation for r in rows]


def _cashier_items(app, screens: dict) -> list[str]:
    app.refresh_screens(force=True)
    return [r["id"] for r in screens["pos-cashier"].get("reconcile", [])]


def test_cashier_collects_and_the_cloud_closes_it_once(counters, cloud, tmp_path):
    """(a) 已补收 at the counter → after the next sync the operator's list shows it closed with the
    counter's note and the time; a second sync changes nothing; the operator cannot close it again."""
    cfg_b, b, screens, b_id = counters["B"]
    sale, item = _flagged_sale(cloud, counters, tmp_path, "a")
    comp = item["compensation_id"]
    assert _listed(cloud, comp)["state"] == "open" and comp in _cashier_items(b, screens)

    b.handle("pos-cashier", {"action": "collect", "id": comp})  # the cashier's tap
    (local,) = [i for i in reconcile.items(b.replica, open_only=False) if i["compensation_id"] == comp]
    assert local["state"] == "collected" and comp not in _cashier_items(b, screens)
    # The close and its event are one transaction: a counter killed now still pushes it next time.
    (event,) = _outbox_reconciliations(b)
    assert (event.compensation_id, event.sale_id, event.state, event.resolved_by, event.resolved_at_ms) == (
        comp, sale["sale_id"], "collected", "cashier", local["resolved_at_ms"])
    assert b.audit.entries("reconcile")[-1]["data"]["state"] == "collected"
    assert _listed(cloud, comp)["state"] == "open"  # not pushed yet

    _sync(cfg_b)
    closed = _listed(cloud, comp)
    assert (closed["state"], closed["note"]) == ("closed", COUNTER_NOTE.format(device=b_id))
    assert closed["closed_at_ms"] == local["resolved_at_ms"]  # the counter's time (same clock here)
    assert cloud.query("SELECT status FROM device_events WHERE kind = 'reconciliation' AND device_id = ?",
                       b_id) == [(sync_pb2.ACK_STATUS_ACCEPTED,)]
    assert _outbox_reconciliations(b) == []

    before_cloud, before_device = _cloud_state(cloud), _device_rows(b)
    _sync(cfg_b)
    assert b.reconcile(force=True) == []
    assert _cloud_state(cloud) == before_cloud and _device_rows(b) == before_device

    again = subprocess.run([str(BIN / "joyedge-cloud"), "reconcile", "close", comp, "--note", "再补一次", "--db",
                            str(cloud.db)], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "closed already" in again.stderr  # the operator would not chase twice
    assert _listed(cloud, comp)["note"] == COUNTER_NOTE.format(device=b_id)


def test_operator_close_reaches_the_counter_and_another_counter_cannot_close_it(counters, cloud, tmp_path):
    """(d) counter A pushes a close of B's item: quarantined at A with the reason, the cloud unchanged;
    (b) the operator's `reconcile close` → after B's next sync the item is closed on B as "closed by
    operator: <note>" (audited, off the cashier's screen); a re-sync changes nothing."""
    cfg_b, b, screens, _ = counters["B"]
    cfg_a, a, _, a_id = counters["A"]
    _, item = _flagged_sale(cloud, counters, tmp_path, "b")
    comp = item["compensation_id"]

    # (d) A faulty or hostile counter A says it collected B's difference (and one the cloud never issued).
    with a.replica.transaction() as conn:
        for target in (comp, "0f6b1c2e-0000-4000-8000-000000000000"):
            enqueue(conn, a.replica.cipher, "reconciliation", sync_pb2.ReconciliationEvent(
                compensation_id=target, sale_id="nope", state="collected", resolved_by="cashier",
                resolved_at_ms=int(time.time() * 1000)))
    closures_before = cloud.query("SELECT * FROM reconcile_closures ORDER BY compensation_id")
    _sync(cfg_a)
    quarantined = {q["reason"] for q in Outbox(a.replica).quarantined() if q["kind"] == "reconciliation"}
    assert quarantined == {f"device {a_id} may not act on compensation {comp!r} (compensation_id): not a "
                           "compensation issued to it",
                           f"device {a_id} may not act on compensation '0f6b1c2e-0000-4000-8000-000000000000' "
                           "(compensation_id): not a compensation issued to it"}
    assert cloud.query("SELECT * FROM reconcile_closures ORDER BY compensation_id") == closures_before
    assert _listed(cloud, comp)["state"] == "open"
    assert cloud.query("SELECT count(*) FROM device_events WHERE kind = 'reconciliation' AND device_id = ?"
                       " AND status = ?", a_id, sync_pb2.ACK_STATUS_REJECTED) == [(2,)]

    # (b) The operator waives it.
    note = "店长免收 · waived by the store manager"
    cli("joyedge-cloud", "reconcile", "close", comp, "--note", note, "--db", str(cloud.db))
    assert comp in _cashier_items(b, screens)  # the counter does not know yet
    printed = _sync(cfg_b)
    assert f"the operator closed {comp}: {note}" in printed and "compensation reconcile_closed" not in printed
    assert b.reconcile(force=True) == []  # no new item: the closure closes the existing one
    (local,) = [i for i in reconcile.items(b.replica, open_only=False) if i["compensation_id"] == comp]
    assert (local["state"], local["resolved_by"]) == ("closed", f"closed by operator: {note}")
    assert comp not in _cashier_items(b, screens)
    entry = b.audit.entries("reconcile")[-1]["data"]
    assert (entry["compensation_id"], entry["state"], entry["by"], entry["cloud"]) == (
        comp, "closed", "operator", f"closed by operator: {note}")
    assert b.audit.verify().ok
    assert _outbox_reconciliations(b) == []  # nothing goes back to the cloud for it

    # The cashier's tap on a stale screen is refused with the reason; nothing is queued.
    b.handle("pos-cashier", {"action": "collect", "id": comp})
    assert "already settled (closed)" in b.checkout.message and _outbox_reconciliations(b) == []

    before_cloud, before_device = _cloud_state(cloud), _device_rows(b)
    _sync(cfg_b)
    assert b.reconcile(force=True) == []
    assert _cloud_state(cloud) == before_cloud and _device_rows(b) == before_device
    assert _listed(cloud, comp)["note"] == note


def test_both_close_before_hearing_of_each_other_the_first_stands_on_each_side(counters, cloud, tmp_path):
    """(c) The cashier collects while B is offline; the operator closes it meanwhile. The push is a
    duplicate outcome (no error, the operator's note kept); B keeps "collected"; a re-sync changes nothing."""
    cfg_b, b, screens, _ = counters["B"]
    _, item = _flagged_sale(cloud, counters, tmp_path, "c")
    comp = item["compensation_id"]
    b.handle("pos-cashier", {"action": "collect", "id": comp})
    note = "顾客在服务台补交 · paid at the service desk"
    cli("joyedge-cloud", "reconcile", "close", comp, "--note", note, "--db", str(cloud.db))

    out = _sync(cfg_b)
    assert "error" not in out.lower()
    assert _listed(cloud, comp)["note"] == note  # the cloud's first close stands
    assert cloud.query("SELECT status, reason FROM device_events WHERE kind = 'reconciliation' AND device_id = ?"
                       " ORDER BY received_at_ms DESC LIMIT 1", counters["B"][3]) == [
        (sync_pb2.ACK_STATUS_DUPLICATE, f"closed already in the cloud: {note}")]
    assert _outbox_reconciliations(b) == []
    with b.replica._lock:
        assert b.replica._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert b.reconcile(force=True) == []
    (local,) = [i for i in reconcile.items(b.replica, open_only=False) if i["compensation_id"] == comp]
    assert (local["state"], local["resolved_by"]) == ("collected", "cashier")  # the counter's first close stands
    assert comp not in _cashier_items(b, screens)

    before_cloud, before_device = _cloud_state(cloud), _device_rows(b)
    _sync(cfg_b)
    assert b.reconcile(force=True) == []
    assert _cloud_state(cloud) == before_cloud and _device_rows(b) == before_device

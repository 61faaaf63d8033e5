"""A single-use coupon used twice while offline: the cloud keeps one, the losing counter is told.

GIVEN a real cloud process, two enrolled and synced π-POS flagships (A and B, fake printer/scanner/
drawer, registered depth replay) in one store, and a member holding coupons both replicas know
WHEN the cloud is unreachable and the member pays by face at A and then at B, each applying the
member's best coupon (the same one), and A syncs before B
THEN the cloud's ledger has exactly one accepted redemption and one conflict, B's sync brings the
compensation back, B's cashier screen (headless Chromium) shows "券已在其他终端使用，差额 ¥… 待补收"
with B's sale number until the cashier marks it collected, every step is in B's audit chain, and a
re-sync (the first answer lost) changes nothing. Also: A offline against the member's own online
redemption (the mini-program) ends the same way.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import kiosk_ui.server as server_mod
from api.v1 import crm_pb2, marketing_pb2
from cloud_stub.marketing import redeem
from cloud_stub.storage import SqliteStorage
from device.config import load_config
from device.pos import reconcile, store
from tests.pos.conftest import BIN, cli, counter_app, enroll_device, push_unsettled, served_screens
from tests.pos.test_offline_refund_audit import _NoDepth, _pay

TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ACCEPTED, CONFLICT = marketing_pb2.REDEMPTION_STATUS_ACCEPTED, marketing_pb2.REDEMPTION_STATUS_CONFLICT
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "POLL_S", 0.01)


def _issue(cloud, member: str, coupon_id: str, title: str, value: int, threshold: int) -> None:
    """The operator issues the member a coupon (written to the cloud's store; devices get it by Pull)."""
    storage = SqliteStorage(cloud.db)
    try:
        now = int(time.time() * 1000)
        storage.upsert_coupon(coupon_id=coupon_id, member_id=member, title=title,
                              kind=crm_pb2.COUPON_KIND_THRESHOLD if threshold else crm_pb2.COUPON_KIND_CASH,
                              value_cents=value, threshold_cents=threshold, valid_from_ms=now - DAY_MS,
                              valid_until_ms=now + 30 * DAY_MS)
    finally:
        storage.close()


@pytest.fixture(scope="module")
def counters(cloud, tmp_path_factory):
    """Counters A and B (their screens are attached per test: `b_screens`)."""
    root = tmp_path_factory.mktemp("double-redemption")
    member = cloud.member("intel_head_pose")["member_id"]
    _issue(cloud, member, f"{member}-dr1", "满100减10券", 1000, 10000)  # at least one coupon both can use
    made = []
    with contextlib.ExitStack() as stack:
        for _counter in ("A", "B"):
            cfg_file = enroll_device(cloud, root, "pos-flagship")
            app = stack.enter_context(counter_app(load_config(cfg_file), lambda view, model: None, depth=_NoDepth()))
            assert app.refresh_credit(force=True) >= 1
            made.append((cfg_file, app))
        yield {"A": made[0], "B": made[1], "member": member}


@pytest.fixture
def b_screens(counters):
    """B's screens served by a kiosk server for this test (stopped, its threads joined, afterwards)."""
    with served_screens(counters["B"][1]) as kiosk:
        yield kiosk


def sale_b_store(app) -> str:
    return app.store_id


def _redemptions(cloud, coupon_id: str) -> list[tuple]:
    return cloud.query("SELECT device_id, channel, status, discount_cents FROM redemptions WHERE coupon_id = ?"
                       " ORDER BY status, received_at_ms", coupon_id)


def test_two_counters_offline_one_coupon_the_cloud_keeps_one_and_the_loser_reconciles(counters, cloud, tmp_path,
                                                                                       b_screens, page: Page):
    (cfg_a, a), (cfg_b, b) = counters["A"], counters["B"]
    cloud.stop()
    try:
        sale_a = _pay(a, tmp_path, 12000)["sale"]
        sale_b = _pay(b, tmp_path, 12000)["sale"]
    finally:
        cloud.start()
    assert sale_a and sale_b and sale_a["mode"] == sale_b["mode"] == "offline"
    coupon = sale_a["coupon_id"]
    assert coupon and sale_b["coupon_id"] == coupon, "both counters apply the member's best coupon"
    discount = sale_b["discount_cents"]
    assert discount > 0

    cli("joyedge", "sync", "--config", str(cfg_a), "--once")  # A first: its redemption stands
    # B's first push reaches the cloud but its answer is lost (daemon killed before settling) …
    first = push_unsettled(cloud, cfg_b, b.replica)
    assert [c.kind for c in first.compensations] == ["coupon_double_redemption"]
    assert b.reconcile(force=True) == []  # nothing settled on the device yet
    # … so the next sync sends the same events again: DUPLICATE, with the same compensation.
    out = cli("joyedge", "sync", "--config", str(cfg_b), "--once").stdout
    assert "coupon_double_redemption" in out
    assert f"on sale {sale_b['sale_id']} (receipt {sale_b['sale_id'][5:21]})" in out, out  # which sale to look at
    cli("joyedge", "sync", "--config", str(cfg_b), "--once")

    # The cloud's ledger: one redemption accepted (A's), B's kept as a conflict with one compensation.
    a_id, b_id = load_config(cfg_a).device.id, load_config(cfg_b).device.id
    assert _redemptions(cloud, coupon) == [(a_id, "offline", ACCEPTED, sale_a["discount_cents"]),
                                           (b_id, "offline", CONFLICT, discount)]
    assert cloud.query("SELECT status FROM coupons WHERE coupon_id = ?", coupon) == [(crm_pb2.COUPON_STATUS_REDEEMED,)]
    assert cloud.query("SELECT device_id, amount_cents, kind FROM compensations WHERE coupon_id = ?", coupon) == [
        (b_id, discount, "coupon_double_redemption")]
    # The operator sees the flagged sale (sale id, device, store, masked member, amount, open) and closes it.
    site = cloud.report["site_id"]
    listed = json.loads(cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db), "--site", site,
                            "--json").stdout)
    mine = [i for i in listed if i["sale_id"] == sale_b["sale_id"]]
    assert [(i["device_id"], i["store_id"], i["amount_cents"], i["state"], i["kind"]) for i in mine] == [
        (b_id, sale_b_store(b), discount, "open", "coupon_double_redemption")]
    member_name = b.replica.member(sale_b["member_id"])["name"]
    assert mine[0]["member"] == "*" + member_name[1:] and member_name not in json.dumps(listed, ensure_ascii=False)
    assert mine[0]["id"] in cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db)).stdout
    assert json.loads(cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db), "--site", "another-site",
                          "--json").stdout) == []
    cli("joyedge-cloud", "reconcile", "close", mine[0]["id"], "--note", "补收 ¥" + str(discount / 100),
        "--db", str(cloud.db))
    still_open = json.loads(cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db), "--open", "--json").stdout)
    assert mine[0]["id"] not in [i["id"] for i in still_open]
    every = json.loads(cli("joyedge-cloud", "reconcile", "list", "--db", str(cloud.db), "--all", "--json").stdout)
    assert [(i["state"], i["note"]) for i in every if i["id"] == mine[0]["id"]] == [("closed", "补收 ¥" + str(discount / 100))]
    again = subprocess.run([str(BIN / "joyedge-cloud"), "reconcile", "close", mine[0]["id"], "--note", "x", "--db",
                            str(cloud.db)], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "closed already" in again.stderr  # the first note stands

    # Both sales are in the ledger once each (the loser's sale is not lost, nor counted twice).
    for sale in (sale_a, sale_b):
        assert cloud.query("SELECT count(*), sum(amount_cents) FROM transactions WHERE txn_id = ?",
                           sale["payment_id"]) == [(1, sale["paid_cents"])]

    # B: one reconciliation item, audited; A: none.
    assert a.reconcile(force=True) == [] and reconcile.items(a.replica) == []
    new = b.reconcile(force=True)
    assert b.reconcile(force=True) == []  # picked up once
    assert [(i["sale_id"], i["amount_cents"], i["state"]) for i in new] == [(sale_b["sale_id"], discount, "open")]
    entry = b.audit.entries("reconcile")[-1]["data"]
    assert entry["sale_id"] == sale_b["sale_id"] and entry["state"] == "open" and entry["amount_cents"] == discount
    assert store.sale(b.replica, sale_b["sale_id"])["status"] == "paid"  # booked as taken; the item is the flag

    # The cashier screen of B shows it, with the sale number; the cashier collects and marks it.
    kiosk = b_screens
    b.refresh_screens(force=True)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{kiosk.url}/pos/cashier")
    item = page.locator(".reconcile-item")
    expect(item).to_have_count(1, timeout=TIMEOUT_MS)
    yuan = f"{discount // 100}.{discount % 100:02d}"
    expect(item.locator(".reconcile-text")).to_have_text(f"券已在其他终端使用，差额 ¥{yuan} 待补收")
    expect(item.locator(".reconcile-sale")).to_have_text(f"单号 {sale_b['sale_id'][5:21]}")
    box = item.locator(".reconcile-done").bounding_box()
    assert box["width"] >= 48 and box["height"] >= 48  # a touch target
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "pos-cashier-reconcile.png").write_bytes(page.screenshot())
    page.click("#lang")
    expect(item.locator(".reconcile-text")).to_have_text(re.compile(r"^coupon already used at another counter"))
    page.click("#lang")
    item.locator(".reconcile-done").click()
    view, action = b.actions.get(timeout=10)  # the tap reaches the app through the kiosk server
    assert (view, action["action"]) == ("pos-cashier", "collect")
    b.handle(view, action)
    expect(page.locator(".reconcile-item")).to_have_count(0, timeout=TIMEOUT_MS)
    expect(page.locator("#reconcile")).to_be_hidden()
    expect(page.locator("#refund")).to_have_text(f"已补收 {yuan}")
    assert reconcile.items(b.replica, open_only=False)[-1]["state"] == "collected"
    assert b.audit.entries("reconcile")[-1]["data"]["state"] == "collected"
    assert b.audit.verify([sale_b["anchor"]]).ok
    with b.replica._lock:
        assert [tuple(r) for r in b.replica._conn.execute("SELECT seen FROM compensations")] == [(1,)]


def test_offline_counter_against_the_members_online_redemption(counters, cloud, tmp_path):
    (cfg_a, a), member = counters["A"], counters["member"]
    coupon = f"{member}-dr2"
    _issue(cloud, member, coupon, "88元现金券", 8800, 0)  # the best coupon for this sale
    cli("joyedge", "sync", "--config", str(cfg_a), "--once")
    cloud.stop()
    try:
        sale = _pay(a, tmp_path, 9900)["sale"]
    finally:
        cloud.start()
    assert sale["mode"] == "offline" and sale["coupon_id"] == coupon
    # Meanwhile the member used it in the mini-program (an online redemption, decided at once).
    storage = SqliteStorage(cloud.db)
    try:
        redeem.redeem(storage, redemption_id="mp-1", coupon_id=coupon, member_id=member,
                      store_id=cloud.report["store_ids"][0], device_id="mini-program", order_amount_cents=20000)
    finally:
        storage.close()
    cli("joyedge", "sync", "--config", str(cfg_a), "--once")
    a_id = load_config(cfg_a).device.id
    assert _redemptions(cloud, coupon) == [("mini-program", "online", ACCEPTED, 8800),
                                           (a_id, "offline", CONFLICT, 8800)]
    (item,) = a.reconcile(force=True)
    assert item["sale_id"] == sale["sale_id"] and item["amount_cents"] == 8800
    assert reconcile.text(item).startswith("券已在其他终端使用，差额 ¥88.00 待补收")
    # The cashier refunds the sale instead: nothing is left to collect, the item closes with it.
    a.refund(f"https://e.joycloud.example/r/{sale['sale_id']}")
    assert reconcile.items(a.replica) == []
    assert reconcile.items(a.replica, open_only=False)[-1]["state"] == "refunded"
    assert a.audit.entries("refund")[-1]["data"]["reconciliation_closed"] == 1

    # The operator hears of it with the next sync: the flagged sale is closed in the cloud with the
    # counter's note, not left open for somebody to chase.
    cli("joyedge", "sync", "--config", str(cfg_a), "--once")
    listed = json.loads(cli("joyedge-cloud", "reconcile", "list", "--all", "--json", "--db", str(cloud.db)).stdout)
    closed = next(i for i in listed if i["id"] == item["compensation_id"])
    assert closed["state"] == "closed" and "refunded in full at counter " + a_id in closed["note"], closed

"""Partial refunds on the cashier page, the coupon on a refund, points back pro rata.

GIVEN a real cloud process, an enrolled and synced π-POS flagship (fake printer/scanner/drawer) with its
cashier page in headless Chromium, and a member holding a "满200减50" coupon who buys three items of
100.00 by face online (the coupon applied: 250.00 paid)
WHEN the cashier scans the receipt on the page, ticks one line and refunds it, taps again (a double
tap of the same refund), ticks a second line, then refunds the rest by amount from the keypad
THEN each refund is its own id (ref-<sale>.<n>) and booked once in the cloud, never beyond what was
paid; the first refund keeps the coupon used (200.00 of goods kept ≥ the threshold), the second falls
below the threshold, keeps the discount on the kept item back and gives the coupon back exactly once
(the member's coupon is usable again after sync); points come back pro rata; the slips read
部分退款 / 已退 / 剩余.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import kiosk_ui.server as server_mod
from api.v1 import crm_pb2
from device.config import load_config
from device.pos import store
from device.pos.refund_rules import line_shares, plan, points_back
from drivers.camera.fake import FakeCamera
from tests.pos.conftest import app_loop, cli, counter_app, enroll_device, served_screens
from tests.pos.test_double_redemption import _issue
from tests.pos.test_offline_refund_audit import _NoDepth
from tests.pos.test_pay_by_face import MEMBER_PHOTO, NpyDepthReplay, _depth_dir, decode_still

TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PRICE, VALUE, THRESHOLD = 10_000, 5_000, 20_000


@pytest.fixture(autouse=True)
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "POLL_S", 0.01)


def test_line_shares_add_up_and_the_coupon_rule():
    # Shares of what was paid add up to it exactly, whatever the rounding.
    for lines, paid in (([333, 333, 334], 900), ([10_000] * 3, 25_000), ([1, 2, 3, 4], 7)):
        assert sum(line_shares(lines, sum(lines), paid)) == paid
    # Kept goods still meet the threshold: the coupon stays used, nothing is kept back.
    p = plan(amount=30_000, paid=25_000, discount=5_000, threshold=20_000, points=250, refunded=0, gross=8_333,
             coupon_restored=False, coupon_valid=True, has_coupon=True)
    assert (p.net_cents, p.clawback_cents, p.coupon, p.points) == (8_333, 0, "kept", 250 * 8_333 // 25_000)
    # Below the threshold: the discount on what is kept comes off the refund, the coupon goes back.
    p = plan(amount=30_000, paid=25_000, discount=5_000, threshold=20_000, points=250, refunded=8_333, gross=8_333,
             coupon_restored=False, coupon_valid=True, has_coupon=True)
    kept = 25_000 - 8_333 - 8_333
    assert (p.clawback_cents, p.coupon) == (kept * 5_000 // 25_000, "restored")
    # An expired coupon is not given back; a refund smaller than the clawback is refused.
    assert plan(amount=30_000, paid=25_000, discount=5_000, threshold=20_000, points=0, refunded=0, gross=25_000,
                coupon_restored=False, coupon_valid=False, has_coupon=True).coupon == "expired"
    with pytest.raises(ValueError, match="threshold"):
        plan(amount=30_000, paid=25_000, discount=5_000, threshold=20_000, points=0, refunded=8_333, gross=1_000,
             coupon_restored=False, coupon_valid=True, has_coupon=True)
    with pytest.raises(ValueError, match="at most"):
        plan(amount=30_000, paid=25_000, discount=0, threshold=0, points=0, refunded=20_000, gross=5_001,
             coupon_restored=False, coupon_valid=True, has_coupon=False)
    # Points: never more back than given, all of them at the end.
    assert points_back(250, 25_000, 25_000, 0) == 250 and points_back(250, 25_000, 24_999, 0) == 249


@pytest.fixture(scope="module")
def counter(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("partial-refund")
    member = cloud.member("intel_head_pose")["member_id"]
    coupon = f"{member}-pr-{int(time.time())}"
    _issue(cloud, member, coupon, "满200减50券", VALUE, THRESHOLD)
    cfg_file = enroll_device(cloud, root, "pos-flagship")  # syncs once: the coupon is in the replica
    with counter_app(load_config(cfg_file), lambda view, model: None, depth=_NoDepth()) as app:
        app.catalog = {f"690000000000{n}": (f"衬衫{n}", PRICE) for n in range(3)}
        yield cfg_file, app, member, coupon


@pytest.fixture
def screens(counter):
    """The counter's screens served for this test (stopped, its threads joined, afterwards)."""
    with served_screens(counter[1]) as kiosk:
        yield kiosk


def _pay_three_items(app, tmp_path) -> dict:
    app.handle("pos-cashier", {"action": "new"})
    for code in sorted(app.catalog):
        app.handle("pos-cashier", {"action": "scan", "code": code})
    rgb = decode_still(MEMBER_PHOTO)  # as _attempt does, without its typed amount
    app.camera = FakeCamera([rgb] * 3)
    app.face.depth = NpyDepthReplay(_depth_dir(tmp_path, rgb, app.face.detector, 25.0), loop=True)
    app.camera.open()
    app.face.depth.open()
    app.handle("pos-customer", {"action": "face"})
    app.run_face_step()
    state = app.checkout.state
    if state == "phone":
        member = app.audit.entries("face")[-1]["data"]["candidates"][0][0]
        app.handle("pos-customer", {"action": "phone", "digits": app.replica.member(member)["phone_last4"]})
    app.handle("pos-customer", {"action": "confirm"})
    out = app.checkout.outcome()
    assert out["state"] == "paid", out["message"]
    return out["sale"]


def test_partial_refunds_on_the_cashier_page_and_the_coupon_goes_back_once(counter, cloud, tmp_path, screens,
                                                                           page: Page):
    cfg_file, app, member, coupon = counter
    kiosk = screens
    points_before = cloud.query("SELECT points FROM members WHERE member_id = ?", member)[0][0]
    sale = _pay_three_items(app, tmp_path)
    assert sale["mode"] == "online" and sale["coupon_id"] == coupon, sale
    amount, paid, points = 3 * PRICE, 3 * PRICE - VALUE, sale["points"]
    assert (sale["amount_cents"], sale["paid_cents"], sale["coupon_threshold_cents"]) == (amount, paid, THRESHOLD)
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")  # redemption and points reach the cloud
    assert cloud.query("SELECT status FROM coupons WHERE coupon_id = ?", coupon) == [(crm_pb2.COUPON_STATUS_REDEEMED,)]

    page.goto(f"{kiosk.url}/pos/cashier")
    app.refresh_screens(force=True)
    share0 = PRICE * paid // amount
    with app_loop(app):
        page.fill("#refund-code", f"https://e.joycloud.example/r/{sale['sale_id']}")
        page.click("#refund-go")
        panel = page.locator("#refunding")
        expect(panel).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#rf-left")).to_have_text(f"{paid // 100}.{paid % 100:02d}")
        expect(page.locator(".rf-line")).to_have_count(3)
        # Refund 1: line 0, its share of what was paid; 200.00 of goods kept ≥ the threshold: the coupon stays used.
        page.locator(".rf-line input").nth(0).check()
        expect(page.locator("#pv-refund")).to_have_text(f"{share0 / 100:.2f}", timeout=TIMEOUT_MS)
        page.click("#rf-lines-go")
        expect(page.locator("#refund")).to_contain_text(
            f"部分退款 ¥{share0 / 100:.2f} / 已退 ¥{share0 / 100:.2f} / 剩余 ¥{(paid - share0) / 100:.2f}",
            timeout=TIMEOUT_MS)
        expect(page.locator(".rf-line input").nth(0)).to_be_disabled()
    rid = f"ref-{sale['sale_id']}"
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [
        (f"{rid}.1", share0)]
    slip = app.printer.jobs()
    assert "部分退款".encode("gb18030") in slip and "剩余".encode("gb18030") in slip
    assert "优惠券仍为已使用".encode("gb18030") in slip

    # A double tap of the same refund (same number): nothing new, here or in the cloud.
    app.handle("pos-cashier", {"action": "refund_lines", "sale": sale["sale_id"], "lines": "0", "seq": 1})
    assert "already done" in app.refund_message
    assert cloud.query("SELECT count(*) FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [(1,)]

    # Refund 2: line 1; what is kept (one item) is below the threshold: its discount share is kept back
    # and the coupon goes back to the member.
    share1 = 2 * PRICE * paid // amount - share0
    kept = paid - share0 - share1
    clawback = kept * VALUE // paid
    net1 = share1 - clawback
    with app_loop(app):
        page.locator(".rf-line input").nth(1).check()
        expect(page.locator("#pv-clawback")).to_have_text(f"{clawback / 100:.2f}", timeout=TIMEOUT_MS)
        page.click("#rf-lines-go")
        expect(page.locator("#refund")).to_contain_text(f"券优惠扣回 ¥{clawback / 100:.2f}", timeout=TIMEOUT_MS)
    expect(page.locator("#refund")).to_contain_text("优惠券已退回会员")
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ? ORDER BY created_at_ms",
                       sale["payment_id"]) == [(f"{rid}.1", share0), (f"{rid}.2", net1)]
    assert cloud.query("SELECT status FROM coupons WHERE coupon_id = ?", coupon) == [(crm_pb2.COUPON_STATUS_ISSUED,)]
    assert cloud.query("SELECT unredeem_id, state FROM coupon_unredemptions WHERE redemption_id = ?",
                       f"red-{sale['sale_id']}") == [(f"{rid}.2", "restored")]
    # The shopper has now paid the kept item's full price.
    assert paid - share0 - net1 == PRICE
    # The member sees the coupon again after the device's next sync.
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert coupon in [c["coupon_id"] for c in app.replica.usable_coupons(member, app.store_id)]

    # Refund 3: the rest by amount from the keypad; an over-refund is refused first.
    left = paid - share0 - net1
    app.handle("pos-cashier", {"action": "refund_amount", "sale": sale["sale_id"], "cents": left + 1, "seq": 3})
    assert "at most" in app.refund_message
    with app_loop(app):
        for digit in str(left):
            page.click(f'#keypad [data-key="{digit}"]')
        page.click("#rf-amount")
        expect(page.locator("#refund")).to_contain_text("剩余 ¥0.00", timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "pos-partial-refund.png"))
    assert store.sale(app.replica, sale["sale_id"])["status"] == "refunded"
    assert cloud.query("SELECT status, refunded_cents FROM payments WHERE payment_id = ?", sale["payment_id"]) == [
        (4, paid)]
    # The coupon went back once; the last refund asked nothing more.
    assert cloud.query("SELECT count(*) FROM coupon_unredemptions WHERE redemption_id = ?",
                       f"red-{sale['sale_id']}") == [(1,)]
    # Points: taken back pro rata, all of them in the end; the chain holds.
    backs = [e["data"]["points"] for e in app.audit.entries("refund") if e["data"].get("sale_id") == sale["sale_id"]
             and "refund_id" in e["data"]]
    assert backs == [-(points * share0 // paid), -(points * (share0 + net1) // paid - points * share0 // paid),
                     -(points - points * (share0 + net1) // paid)]
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")
    assert cloud.query("SELECT points FROM members WHERE member_id = ?", member)[0][0] == points_before
    assert app.audit.verify([sale["anchor"]]).ok

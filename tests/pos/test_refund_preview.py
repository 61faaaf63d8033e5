"""The refund preview on the cashier page: what confirming would do, shown before the confirm.

GIVEN a real cloud process, an enrolled and synced π-POS flagship (fake printer/scanner/drawer) with its
cashier page in headless Chromium, and a member holding a "满200减60" coupon who buys three items of
100.00 by face online (240.00 paid: each item's paid share is 80.00)
WHEN the cashier scans the receipt, types an item's list price (100.00) on the keypad, takes the hint's
paid share (80.00) instead and confirms; types 10.00 (less than the discount it would keep back); then
ticks a second item, switches to English and confirms
THEN before each confirm the preview shows the refund, the discount kept back and why, the coupon's
fate, the points taken back and what is left — and those are exactly what the slip prints and the cloud
books (refund rows, the coupon given back once, the member's points after sync); the 10.00 refund
disables the confirm with the reason; the keypad says it is money paid; touch targets are ≥ 48 px; the
preview and its confirm lie inside a 1280×900 and a 1024×768 screen without scrolling, in both languages.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import kiosk_ui.server as server_mod
from api.v1 import crm_pb2
from device.config import load_config
from device.pos.receipt import yuan
from tests.pos.conftest import app_loop, cli, counter_app, enroll_device, retire_coupon, served_screens
from tests.pos.test_double_redemption import _issue
from tests.pos.test_offline_refund_audit import _NoDepth
from tests.pos.test_partial_refund import _pay_three_items

TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PRICE, VALUE, THRESHOLD = 10_000, 6_000, 20_000
TITLE = "满200减60券"


@pytest.fixture(autouse=True)
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "POLL_S", 0.01)


@pytest.fixture(scope="module")
def counter(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("refund-preview")
    member = cloud.member("intel_head_pose")["member_id"]
    coupon = f"{member}-pv-{int(time.time())}"
    _issue(cloud, member, coupon, TITLE, VALUE, THRESHOLD)
    cfg_file = enroll_device(cloud, root, "pos-flagship")
    try:
        with counter_app(load_config(cfg_file), lambda view, model: None, depth=_NoDepth()) as app:
            app.catalog = {f"690000000001{n}": (f"外套{n}", PRICE) for n in range(3)}
            yield cfg_file, app, member, coupon
    finally:
        retire_coupon(cloud, member, coupon, TITLE, VALUE, THRESHOLD)


@pytest.fixture
def screens(counter):
    """The counter's screens served for this test (stopped, its threads joined, afterwards)."""
    with served_screens(counter[1]) as kiosk:
        yield kiosk


def _box(page: Page) -> dict[str, str]:
    return {k: page.locator(f"#pv-{k}").inner_text() for k in ("refund", "clawback", "points", "left")}


def _type(page: Page, cents: int) -> None:
    page.click('#keypad [data-key="C"]')
    for digit in str(cents):
        page.click(f'#keypad [data-key="{digit}"]')


def _touch_ok(page: Page, selector: str) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None and box["width"] >= 48 and box["height"] >= 48, (selector, box)


def _confirm_in_view(page: Page, shot: str = "") -> None:
    """The refund's confirm buttons and its preview lie inside the viewport with nothing scrolled (the
    page nor its main area: only the sale's line list may scroll, inside its own box)."""
    size = page.viewport_size
    assert size is not None
    scrolled = page.evaluate("() => [window.scrollY, document.querySelector('main').scrollTop]")
    assert scrolled == [0, 0], (size, scrolled)
    for selector in ("#rf-amount", "#rf-lines-go", "#rf-close", "#rf-preview"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0, (size, selector, box)
        assert box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"], (
            size, selector, box)
    if shot:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"pos-refund-{shot}-{size['width']}x{size['height']}.png"))


def _fits_both_screens(page: Page, lang: str) -> None:
    """The refund flow on a 1280×900 and on a 1024×768 cashier screen, then back to 1280×900."""
    for width, height in ((1024, 768), (1280, 900)):
        page.set_viewport_size({"width": width, "height": height})
        _confirm_in_view(page, shot=f"fits-{lang}")


def test_the_preview_is_what_the_slip_and_the_cloud_then_show(counter, cloud, tmp_path, screens, page: Page):
    cfg_file, app, member, coupon = counter
    kiosk = screens
    sale = _pay_three_items(app, tmp_path)
    assert sale["coupon_id"] == coupon, "the test's coupon must be the best one for the sale"
    amount, paid, points = 3 * PRICE, 3 * PRICE - VALUE, sale["points"]
    share = PRICE * paid // amount  # 80.00: what an item was paid
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")  # redemption and points reach the cloud
    points_before = cloud.query("SELECT points FROM members WHERE member_id = ?", member)[0][0]
    rid = f"ref-{sale['sale_id']}"

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{kiosk.url}/pos/cashier")
    app.refresh_screens(force=True)
    with app_loop(app):
        page.fill("#refund-code", f"https://e.joycloud.example/r/{sale['sale_id']}")
        page.click("#refund-go")
        expect(page.locator("#refunding")).to_be_visible(timeout=TIMEOUT_MS)
        # The keypad says what it means, and nothing can be confirmed before a preview.
        expect(page.locator("#rf-amount")).to_have_text("按实付金额退款")
        expect(page.locator("#refunding")).to_contain_text("实付金额")
        expect(page.locator("#rf-amount")).to_be_disabled()
        expect(page.locator("#rf-lines-go")).to_be_disabled()

        # The cashier types the item's list price: the page points at its paid share (and previews 100.00
        # as asked: the kept goods would fall below the threshold).
        _type(page, PRICE)
        expect(page.locator("#rf-hint")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#rf-hint-text")).to_contain_text(f"标价 ¥{yuan(PRICE)}，按实付分摊应退 ¥{yuan(share)}")
        _confirm_in_view(page)  # the hint's extra row still leaves the confirm on screen
        _touch_ok(page, "#rf-hint-use")
        page.click("#rf-hint-use")
        expect(page.locator("#entry")).to_have_text(yuan(share))
        expect(page.locator("#pv-refund")).to_have_text(yuan(share), timeout=TIMEOUT_MS)
        expect(page.locator("#rf-hint")).to_be_hidden()
        pv1 = _box(page)
        coupon1 = page.locator("#pv-coupon").inner_text()
        assert pv1 == {"refund": yuan(share), "clawback": "0.00", "points": str(points * share // paid),
                       "left": yuan(paid - share)}, pv1
        assert "优惠券仍为已使用" in coupon1 and page.locator("#pv-why").is_hidden()
        page.click("#rf-amount")
        expect(page.locator("#refund")).to_contain_text(f"部分退款 ¥{pv1['refund']}", timeout=TIMEOUT_MS)
    slip1 = app.printer.jobs()
    for text in ("部分退款 刷脸支付", pv1["refund"], "剩余", pv1["left"], f"会员积分 -{pv1['points']}",
                 "优惠券仍为已使用"):
        assert text.encode("gb18030") in slip1, text
    assert "券优惠扣回".encode("gb18030") not in slip1
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ?", sale["payment_id"]) == [
        (f"{rid}.1", share)]

    printed = len(slip1)
    with app_loop(app):
        # 10.00 would leave goods below the threshold, with 37.50 of discount to keep back: refused before
        # the confirm, with the reason.
        _type(page, 1_000)
        kept = paid - share - 1_000
        reason = page.locator("#pv-reason")
        expect(reason).to_contain_text(f"需扣回券优惠 ¥{yuan(kept * VALUE // paid)}", timeout=TIMEOUT_MS)
        expect(page.locator("#rf-amount")).to_be_disabled()
        expect(page.locator("#pv-figures")).to_be_hidden()

        # Ticking the second item instead: the coupon goes back, the discount on the kept item is kept back.
        page.locator(".rf-line input").nth(1).check()
        kept = paid - 2 * share
        clawback = kept * VALUE // paid
        net = share - clawback
        expect(page.locator("#pv-clawback")).to_have_text(yuan(clawback), timeout=TIMEOUT_MS)
        expect(page.locator("#rf-amount")).to_be_disabled()  # the keypad amount is not what would be refunded
        expect(page.locator("#rf-lines-go")).to_be_enabled()
        expect(page.locator("#pv-why")).to_contain_text(f"不满券门槛 ¥{yuan(THRESHOLD)}")
        expect(page.locator("#pv-coupon")).to_contain_text("优惠券将退回会员")
        pv2 = _box(page)
        back = points * (share + net) // paid - points * share // paid
        assert pv2 == {"refund": yuan(net), "clawback": yuan(clawback), "points": str(back),
                       "left": yuan(paid - share - net)}, pv2
        assert paid - share - net == PRICE  # what is left is the kept item at full price
        # The tallest preview (figures, why, the coupon) with its confirm fits the screen, no scrolling.
        _fits_both_screens(page, "zh")

        # The English side says the same; the controls are touch-sized.
        page.click("#lang")
        expect(page.locator("#pv-coupon")).to_have_text("the coupon goes back to the member")
        expect(page.locator("#pv-why")).to_contain_text("below the coupon's")
        expect(page.locator("#rf-lines-go")).to_have_text("Refund ticked items")
        expect(page.locator("#rf-amount")).to_have_text("Refund this paid amount")
        for selector in ("#rf-amount", "#rf-lines-go", "#rf-close", "#lang", ".rf-line label >> nth=1"):
            _touch_ok(page, selector)
        _fits_both_screens(page, "en")
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#refunding").screenshot(path=str(ARTIFACTS / "pos-refund-preview.png"))
        assert _box(page) == pv2
        page.click("#rf-lines-go")
        expect(page.locator("#refund")).to_contain_text(f"coupon discount kept back {pv2['clawback']}",
                                                        timeout=TIMEOUT_MS)
        page.click("#lang")

    slip2 = app.printer.jobs()[printed:]
    for text in ("部分退款 刷脸支付", f"¥{pv2['refund']}", "券优惠扣回", f"-{pv2['clawback']}", f"¥{pv2['left']}",
                 f"会员积分 -{pv2['points']}", "优惠券已退回会员账户"):
        assert text.encode("gb18030") in slip2, text
    assert cloud.query("SELECT refund_id, amount_cents FROM refunds WHERE payment_id = ? ORDER BY created_at_ms",
                       sale["payment_id"]) == [(f"{rid}.1", share), (f"{rid}.2", int(pv2["refund"].replace(".", "")))]
    assert cloud.query("SELECT unredeem_id, state FROM coupon_unredemptions WHERE redemption_id = ?",
                       f"red-{sale['sale_id']}") == [(f"{rid}.2", "restored")]
    assert cloud.query("SELECT status FROM coupons WHERE coupon_id = ?", coupon) == [(crm_pb2.COUPON_STATUS_ISSUED,)]
    cli("joyedge", "sync", "--config", str(cfg_file), "--once")  # the points reversals reach the cloud
    after = cloud.query("SELECT points FROM members WHERE member_id = ?", member)[0][0]
    assert after == points_before - int(pv1["points"]) - int(pv2["points"])
    assert coupon in [c["coupon_id"] for c in app.replica.usable_coupons(member, app.store_id)]
    assert app.audit.verify([sale["anchor"]]).ok


def test_preview_writes_nothing_and_follows_a_pending_refund(counter, cloud, tmp_path):
    """GIVEN an online sale; WHEN the preview is asked (valid, over-refund, returned line, stale number)
    THEN nothing is written (no refund row, no audit entry); and while a refund is pending (cloud down),
    the preview shows that refund — the one the next confirm retries — whatever was typed."""
    from device.pos import store
    from device.pos.refund import preview

    _, app, _, _ = counter
    app.handle("pos-cashier", {"action": "new"})
    sale = _pay_three_items(app, tmp_path)
    sid, paid = sale["sale_id"], sale["paid_cents"]
    audit_n = len(app.audit.entries())
    assert preview(app.replica, sid, 1, cents=paid + 1)["reason"].endswith(f"at most {yuan(paid)} is left to refund")
    assert preview(app.replica, sid, 2, cents=100)["reason"].endswith("scan the receipt again")
    ok = preview(app.replica, sid, 1, lines=[0, 1, 2])
    assert ok["ok"] and ok["net_cents"] == paid and ok["left_after_cents"] == 0
    assert store.refunds(app.replica, sid) == [] and len(app.audit.entries()) == audit_n
    cloud.stop()
    try:
        app.handle("pos-cashier", {"action": "refund", "code": f"https://e.joycloud.example/r/{sid}"})
        app.handle("pos-cashier", {"action": "refund_lines", "sale": sid, "lines": "0", "seq": 1})
        assert "cloud unreachable" in app.refund_message
        pv = app.preview_refund(sid, 1, cents=123)
        row = store.refunds(app.replica, sid)[0]
        assert row["state"] == "pending" and pv["ok"] and pv["refund"] == yuan(int(row["amount_cents"]))
        assert pv["reason"].endswith("retries the unfinished refund")
    finally:
        cloud.start()
    app.handle("pos-cashier", {"action": "refund_amount", "sale": sid, "cents": 123, "seq": 1})
    assert store.refunds(app.replica, sid)[0]["state"] == "done", app.refund_message
    app.handle("pos-cashier", {"action": "refund_close"})

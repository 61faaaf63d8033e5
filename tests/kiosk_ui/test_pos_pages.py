"""The π-POS cashier and customer screens in headless Chromium, driving one pay-by-face end to end.

GIVEN a real cloud on loopback, an enrolled π-POS flagship app (fake printer/scanner/drawer, a replay
camera showing a member, a registered depth replay) and its kiosk server
WHEN the cashier types 128.00 on the cashier page and the customer taps 刷脸支付, (the phone digits when
asked) and 确认支付 on the customer page
THEN both pages follow the checkout to "paid", the receipt is printed and the cloud has one captured
payment. Also: Chinese by default with an English switch, touch targets ≥ 48 px, readable contrast,
the offline banner, and reconnection by itself after the device app's server restarts.
"""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import kiosk_ui.server as server_mod
from device.config import load_config
from device.pos.build import build_pos_app, connect_gateway
from drivers.camera.depth import NpyDepthReplay
from drivers.camera.fake import FakeCamera
from drivers.camera.replay import decode_still
from kiosk_ui.server import KioskServer
from tests.pos.conftest import Cloud, enroll_device
from tests.pos.test_pay_by_face import MEMBER_PHOTO, _depth_dir

TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "POLL_S", 0.01)


@pytest.fixture(scope="module")
def pos_cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("pos-pages-cloud"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def running_pos(pos_cloud, tmp_path):
    """The π-POS app loop on its own thread, serving both screens from one kiosk server."""
    cfg = load_config(enroll_device(pos_cloud, tmp_path, "pos-flagship"))
    rgb = decode_still(MEMBER_PHOTO)
    kiosk = KioskServer(port=0).start()
    gateway = connect_gateway(cfg)
    app = build_pos_app(cfg, publish=kiosk.publish, camera=FakeCamera(itertools.repeat(rgb)),
                        depth=NpyDepthReplay(Path("unused")), fake_hardware=True, gateway=gateway)
    app.face.depth = NpyDepthReplay(_depth_dir(tmp_path, rgb, app.face.detector, 25.0), loop=True)
    for view in ("pos-cashier", "pos-customer"):
        kiosk.on_action(view, app.on_action(view))
    stop = threading.Event()
    loop = threading.Thread(target=app.run, args=(stop,), name="pos-app")
    loop.start()
    try:
        yield app, kiosk, pos_cloud
    finally:
        stop.set()
        loop.join(timeout=30)
        kiosk.stop()
        gateway.close()
        app.replica.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"pos-{name}.png").write_bytes(page.screenshot())


def test_pay_by_face_through_both_screens(page: Page, running_pos) -> None:
    app, kiosk, cloud = running_pos
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{kiosk.url}/pos/cashier")
    customer = page.context.new_page()
    customer.set_viewport_size({"width": 1024, "height": 600})
    customer.goto(f"{kiosk.url}/pos/customer")
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=TIMEOUT_MS)
    expect(customer.locator("body")).to_have_attribute("data-state", "idle", timeout=TIMEOUT_MS)
    expect(customer.locator("[data-for=idle] .prompt")).to_have_text("欢迎光临")  # Chinese by default

    for key in ("1", "2", "8", "00"):
        page.click(f"[data-key='{key}']")
    expect(page.locator("#entry")).to_have_text("128.00")
    page.click("#set-amount")
    expect(customer.locator("#due")).to_have_text("128.00", timeout=TIMEOUT_MS)
    expect(page.locator("#due")).to_have_text("128.00")
    _shot(page, "cashier-cart")
    _shot(customer, "customer-cart")

    customer.click("#face")
    expect(customer.locator("body")).to_have_attribute("data-state", re.compile("^(confirm|phone)$"),
                                                       timeout=TIMEOUT_MS)
    if customer.evaluate("document.body.dataset.state") == "phone":
        member = app.replica.member(app.checkout.candidates[0].member_id)
        for d in member["phone_last4"]:
            customer.click(f"[data-digit='{d}']")
        customer.click("#phone-ok")
        expect(customer.locator("body")).to_have_attribute("data-state", "confirm", timeout=TIMEOUT_MS)
    assert customer.locator("#member").inner_text().startswith("*")  # masked, never the full name
    _shot(customer, "customer-confirm")
    customer.click("#confirm")
    expect(customer.locator("body")).to_have_attribute("data-state", "paid", timeout=TIMEOUT_MS)
    expect(customer.locator("[data-for=paid] .prompt")).to_have_text("支付成功，谢谢惠顾")
    expect(page.locator("#mode")).to_have_text("刷脸支付", timeout=TIMEOUT_MS)
    _shot(customer, "customer-paid")
    _shot(page, "cashier-paid")

    sale = app.checkout.outcome()["sale"]
    assert sale["mode"] == "online"
    assert cloud.query("SELECT status, captured_cents FROM payments WHERE payment_id = ?", sale["payment_id"]) == [
        (3, sale["paid_cents"])]
    assert b"128.00" in app.printer.jobs()

    # English switch: the page's labels and the device's bilingual messages follow.
    customer.click("#lang")
    expect(customer.locator("[data-for=paid] .prompt")).to_have_text("Paid — thank you")
    expect(customer.locator("html")).to_have_attribute("lang", "en")
    _shot(customer, "customer-paid-en")

    # Touch targets ≥ 48 px and readable contrast (WCAG AA 4.5:1) on both screens.
    for p in (page, customer):
        small = p.evaluate("""() => [...document.querySelectorAll('button, input')]
            .filter(el => el.offsetParent !== null)
            .map(el => [el.id || el.textContent.trim(), el.getBoundingClientRect()])
            .filter(([, r]) => r.width < 48 || r.height < 48).map(([n]) => n)""")
        assert small == [], small
        worst = p.evaluate(CONTRAST_JS)
        assert worst >= 4.5, worst


CONTRAST_JS = """() => {
  const lum = (c) => { const [r, g, b] = c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => {
      v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bgOf = (el) => { for (; el; el = el.parentElement) { const c = getComputedStyle(el).backgroundColor;
      if (c && !c.endsWith(', 0)') && c !== 'transparent') return c; } return 'rgb(16, 19, 23)'; };
  let worst = 21;
  for (const el of document.querySelectorAll('body *')) {
    if (el.offsetParent === null || !el.childNodes.length) continue;
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(getComputedStyle(el).color), b = lum(bgOf(el));
    worst = Math.min(worst, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
  }
  return worst;
}"""


def test_offline_banner_and_reconnect_by_itself(page: Page, running_pos) -> None:
    app, kiosk, _ = running_pos
    page.goto(f"{kiosk.url}/pos/customer")
    expect(page.locator("#offline")).to_be_hidden(timeout=TIMEOUT_MS)
    app.offline = True  # what a failed call to the cloud sets
    app.refresh_screens(force=True)
    expect(page.locator("#offline")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#offline")).to_contain_text("离线模式")
    _shot(page, "customer-offline")

    port = kiosk.port
    kiosk.stop()  # the device app restarts
    expect(page.locator("#reconnecting")).to_be_visible(timeout=TIMEOUT_MS)
    with KioskServer(port=port) as again:
        app.offline = False
        again.publish("pos-customer", {"state": "cart", "amount": "9.90", "due": "9.90", "offline": False})
        expect(page.locator("#due")).to_have_text("9.90", timeout=TIMEOUT_MS)
        expect(page.locator("#reconnecting")).to_be_hidden()
        expect(page.locator("#offline")).to_be_hidden()

"""The mirror page in headless Chromium (Debian's, via the root conftest), fed by a real KioskServer."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from kiosk_ui.server import KioskServer
from tests import browser
from tests.browser import save_screenshot
from tests.kiosk_ui.conftest import MEMBER, WELCOME

TIMEOUT_MS = 5000


def open_mirror(page: Page, kiosk: KioskServer) -> list[str]:
    return browser.open_mirror(page, kiosk, TIMEOUT_MS)


def test_member_then_welcome(page: Page, kiosk: KioskServer) -> None:
    """GIVEN the mirror page on the attract screen WHEN the device publishes a member, then an unknown
    face THEN the card shows the member's masked name, tier, points and coupons, and then nothing personal."""
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    requests = open_mirror(page, kiosk)
    body = page.locator("body")
    expect(body).to_have_attribute("data-state", "attract")
    expect(page.get_by_text("请靠近魔镜")).to_be_visible()
    save_screenshot(page, "mirror-attract.png")

    kiosk.publish("mirror", MEMBER)
    expect(body).to_have_attribute("data-state", "member", timeout=TIMEOUT_MS)
    expect(page.locator("#greeting")).to_have_text("*建，下午好！")
    expect(page.locator("#tier")).to_have_text("璀璨卡")
    expect(page.locator("#points")).to_have_text("7865/10000 保级")
    expect(page.locator("#stars")).to_have_text("★★★★☆")
    expect(page.locator("#visit-cycle")).to_have_text("1.2 次/月")
    coupons = page.locator("#coupons li")
    expect(coupons).to_have_count(2)
    expect(coupons.nth(0)).to_have_text("20元现金券打开小程序卡包出示给收银员")
    expect(coupons.nth(0).locator(".coupon-title")).to_have_text("20元现金券")
    expect(page.locator("#offline")).to_be_hidden()
    expect(page.get_by_text("请靠近魔镜")).to_be_hidden()
    save_screenshot(page, "mirror-member.png")

    kiosk.publish("mirror", WELCOME)
    expect(body).to_have_attribute("data-state", "welcome", timeout=TIMEOUT_MS)
    expect(page.locator("#greeting")).to_have_text("欢迎光临！")
    expect(page.locator("#message")).to_have_text(WELCOME["message"])
    for selector in ("#tier", "#points", "#coupons"):
        expect(page.locator(selector)).to_be_hidden()
        expect(page.locator(selector)).to_have_text("")  # emptied, not merely hidden
    expect(page.get_by_text("璀璨卡")).to_have_count(0)
    save_screenshot(page, "mirror-welcome.png")

    kiosk.publish("mirror", {"state": "attract"})
    expect(body).to_have_attribute("data-state", "attract", timeout=TIMEOUT_MS)
    expect(page.locator("#greeting")).to_have_text("")

    assert errors == []
    assert all(url.startswith(kiosk.url + "/") for url in requests), requests


def test_model_text_is_never_parsed_as_html(page: Page, kiosk: KioskServer) -> None:
    open_mirror(page, kiosk)
    evil = '<img src=x onerror="document.title=\'pwned\'">'
    kiosk.publish("mirror", MEMBER | {"greeting": evil, "coupons": [{"title": evil, "hint": "<b>x</b>"}]})
    expect(page.locator("#greeting")).to_have_text(evil, timeout=TIMEOUT_MS)
    expect(page.locator("#coupons .coupon-hint")).to_have_text("<b>x</b>")
    expect(page.locator("img")).to_have_count(0)
    assert page.title() == "悦云魔镜"


def test_offline_banner_and_device_name(page: Page, kiosk: KioskServer) -> None:
    open_mirror(page, kiosk)
    kiosk.publish("mirror", {"state": "attract", "offline": True, "device": "mirror-01"})
    expect(page.locator("#offline")).to_have_text("离线模式", timeout=TIMEOUT_MS)
    expect(page.locator("#offline")).to_be_visible()
    expect(page.locator("#device")).to_have_text("mirror-01")
    kiosk.publish("mirror", {"state": "attract"})
    expect(page.locator("#offline")).to_be_hidden(timeout=TIMEOUT_MS)


def test_page_shows_reconnecting_and_recovers_by_itself(page: Page, kiosk: KioskServer) -> None:
    """GIVEN a page showing a member WHEN the server goes away THEN "正在重新连接…" shows; WHEN a server
    comes back on the same port THEN the page reconnects by itself and renders that server's model."""
    open_mirror(page, kiosk)
    kiosk.publish("mirror", MEMBER)
    expect(page.locator("#tier")).to_have_text("璀璨卡", timeout=TIMEOUT_MS)
    expect(page.locator("#reconnecting")).to_be_hidden()

    kiosk.stop()
    expect(page.locator("#reconnecting")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#reconnecting")).to_have_text("正在重新连接…")

    with KioskServer(port=kiosk.port) as again:
        again.publish("mirror", WELCOME)
        expect(page.locator("#greeting")).to_have_text("欢迎光临！", timeout=TIMEOUT_MS)
        expect(page.locator("#reconnecting")).to_be_hidden()
        expect(page.locator("#tier")).to_have_text("")

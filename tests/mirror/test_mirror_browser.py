"""The mirror flows in headless Chromium against the real device app (real models, gallery, outbox),
a real KioskServer and a real reference cloud on loopback; only the camera is scripted.

Screenshots go to test-artifacts/ (not committed).
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from device.demo import BUILTIN_CAST, BUILTIN_STRANGERS, _augment
from device.greeting import mask_name
from device.mirror.content import DEFAULT_RULES
from device.mirror.enrollment import CONSENT_VERSION
from device.mirror.traffic import TrafficAggregator
from drivers.camera.replay import decode_still
from kiosk_ui.server import KioskServer
from sync.outbox import Outbox
from tests import browser
from tests.browser import save_screenshot as shot
from tests.mirror.conftest import BAY, BLANK, NEW_MEMBER, NEW_NAME, head_turn_frames, qr_frame, start_mirror

UI_S = 10_000       # a page update (ms)
FLOW_S = 60_000     # a step that waits for the models on 2 cores (ms)


def open_mirror(page: Page, kiosk: KioskServer) -> list[str]:
    return browser.open_mirror(page, kiosk, UI_S)


def assert_touch_targets(page: Page) -> None:
    for button in page.locator("button:visible").all():
        box = button.bounding_box()
        assert box and box["width"] >= 48 and box["height"] >= 48, (button.inner_text(), box)


@pytest.fixture
def kiosk():
    with KioskServer(port=0) as server:
        yield server


@pytest.mark.usefixtures("fast_flows")
def test_member_card_find_my_car_and_not_me(page: Page, kiosk, mirror_device, models, mirror_cloud, tmp_path):
    """GIVEN a synced mirror WHEN Grace Hopper (a consenting member) steps up THEN her masked card shows,
    "find my car" shows her bay, and "not me" records feedback (local table + outbox) and drops the card."""
    daemon = mirror_device("mirror-a")
    daemon.sync_once()
    mirror = start_mirror(models, daemon, mirror_cloud.store_id, kiosk.publish, kiosk.on_action,
                          mirror_cloud.address)
    try:
        requests = open_mirror(page, kiosk)
        hopper = _augment(decode_still(BUILTIN_CAST / "grace_hopper" / "grace_hopper.jpg"), 0)
        mirror.scene.show([hopper])
        body = page.locator("body")
        expect(body).to_have_attribute("data-state", "member", timeout=FLOW_S)
        name = daemon.replica.member(mirror_cloud.hopper)["name"]
        expect(page.locator("#greeting")).to_contain_text(mask_name(name) + "，")
        expect(page.locator("#offline")).to_be_hidden()  # the daemon's status says online
        expect(page.locator("#points")).to_contain_text("保级")
        assert name not in page.content()
        shot(page, "mirror-member-card.png")

        page.locator("#find-car").click()
        expect(page.locator(".car-bay")).to_have_text(BAY, timeout=UI_S)
        expect(page.locator(".car-plate")).to_have_text("沪A·***45")
        assert_touch_targets(page)
        page.locator("#lang").click()
        expect(page.locator("#find-car")).to_have_text("Find my car")
        expect(page.locator("#greeting")).to_contain_text("Good")
        shot(page, "mirror-find-car-en.png")

        page.locator("#not-me").click()
        expect(body).to_have_attribute("data-state", "welcome", timeout=UI_S)
        expect(page.locator("#message")).to_contain_text("Sorry")
        feedback = daemon.replica.feedback_events()
        assert [(f["kind"], f["member_id"]) for f in feedback] == [("not_me", mirror_cloud.hopper)]
        assert [e.WhichOneof("payload") for e in Outbox(daemon.replica).pending()].count("not_me") == 1
        assert all(r.startswith(kiosk.url) for r in requests)  # no CDN, nothing from the internet
    finally:
        mirror.close()
    assert not any(m.get("state") == "member" for m in mirror.published[-1:])


@pytest.mark.usefixtures("fast_flows")
def test_anonymous_shopper_sees_content_and_only_an_hourly_count_is_kept(page: Page, kiosk, mirror_device, models,
                                                                         mirror_cloud, tmp_path):
    """GIVEN a mirror WHEN a stranger stands in front of it THEN a neutral welcome with campaign content
    shows, without anything personal; when they leave only the hour's counters hold them."""
    daemon = mirror_device("mirror-b")
    daemon.sync_once()
    mirror = start_mirror(models, daemon, mirror_cloud.store_id, kiosk.publish, kiosk.on_action,
                          mirror_cloud.address)
    try:
        open_mirror(page, kiosk)
        mirror.scene.show([decode_still(BUILTIN_STRANGERS / "intel_walker_woman_34.jpg")])
        body = page.locator("body")
        expect(body).to_have_attribute("data-state", "welcome", timeout=FLOW_S)
        expect(page.locator("#content")).to_be_visible()
        assert page.locator("#content-title").inner_text() in {r.title for r in DEFAULT_RULES}
        expect(page.locator("#enroll-btn")).to_be_visible()
        expect(page.locator("#tier")).to_have_text("")
        shot(page, "mirror-anonymous.png")
        mirror.scene.show([BLANK])
        expect(body).to_have_attribute("data-state", "attract", timeout=FLOW_S)
        pending = mirror.app.traffic.pending()
        assert sum(c["shoppers"] for c in pending.values()) >= 1
    finally:
        mirror.close()
    welcome = next(m for m in mirror.published if m["state"] == "welcome")
    assert set(welcome) <= {"state", "greeting", "message", "greeting_en", "message_en", "content", "can_enroll",
                            "offline", "device"}
    # The running hour stays in the replica file as aggregates (pushed once it has closed, after a restart);
    # anything already pushed is suppressed: a single shopper is under 5, so no bucket survives.
    traffic = [e for e in Outbox(daemon.replica).pending() if e.WhichOneof("payload") == "traffic"]
    assert all(dict(e.traffic.counts) == {} for e in traffic)
    kept = TrafficAggregator(Outbox(daemon.replica), mirror_cloud.store_id).pending()
    assert traffic or sum(c["shoppers"] for c in kept.values()) >= 1
    files = [p.relative_to(tmp_path / "mirror-b").as_posix() for p in (tmp_path / "mirror-b").rglob("*") if p.is_file()]
    assert all(f.startswith(("replica.db", "identity/")) for f in files), files


@pytest.mark.usefixtures("fast_flows")
def test_enrollment_with_consent_then_withdrawal_reaches_both_devices(page: Page, kiosk, mirror_device, models, mirror_cloud,
                                                                     shared_data):
    """GIVEN two devices of one site syncing from one cloud WHEN a member enrolls at mirror A (QR, explicit
    consent, liveness turns, three good frames) THEN after one sync both devices hold her template and
    A greets her; WHEN she withdraws on the same screen THEN A drops it at once and B within one sync."""
    a, b = mirror_device("mirror-a"), mirror_device("mirror-c")
    a.sync_once()
    b.sync_once()
    assert mirror_cloud.templates_of(NEW_MEMBER) == 0
    mirror = start_mirror(models, a, mirror_cloud.store_id, kiosk.publish, kiosk.on_action,
                          mirror_cloud.address, member_codes=mirror_cloud.verifier(db_path=a.replica.path))
    turns = head_turn_frames(shared_data)
    body = page.locator("body")
    try:
        open_mirror(page, kiosk)
        mirror.scene.show(turns)
        expect(page.locator("#enroll-btn")).to_be_visible(timeout=FLOW_S)
        page.locator("#enroll-btn").click()
        expect(body).to_have_attribute("data-step", "scan", timeout=UI_S)
        # A screenshot of yesterday's code (expired) and the old static code are refused with the reason.
        mirror.scene.show([qr_frame(mirror_cloud.mint(NEW_MEMBER, ttl_s=60, now=time.time() - 600))])
        expect(page.locator("#message")).to_have_text("二维码已过期，请刷新小程序后重试", timeout=FLOW_S)
        shot(page, "mirror-enroll-expired-qr.png")
        mirror.scene.show([qr_frame("JOYMEMBER:" + NEW_MEMBER)])
        expect(page.locator("#message")).to_have_text("无效的会员码", timeout=FLOW_S)
        expect(body).to_have_attribute("data-step", "scan")
        mirror.scene.show([qr_frame(mirror_cloud.mint(NEW_MEMBER))])
        expect(body).to_have_attribute("data-step", "consent", timeout=FLOW_S)
        expect(page.locator("#consent-version")).to_have_text(CONSENT_VERSION)
        expect(page.locator("#greeting")).to_contain_text(mask_name(NEW_NAME))
        expect(page.locator("#withdraw")).to_be_hidden()  # nothing to withdraw yet
        assert_touch_targets(page)
        shot(page, "mirror-enroll-consent.png")
        mirror.scene.show(turns)
        page.locator("#agree").click()
        expect(body).to_have_attribute("data-step", "capture", timeout=UI_S)
        expect(body).to_have_attribute("data-step", "done", timeout=FLOW_S)
        shot(page, "mirror-enroll-done.png")
        kinds = [e.WhichOneof("payload") for e in Outbox(a.replica).pending()]
        assert kinds.count("enrollment") == 1

        a.sync_once()  # push the enrollment
        a.sync_once()  # and pull the template back (a Pull in the same cycle may not see the push yet)
        b.sync_once()
        assert [t.member_id for t in a.replica.templates()].count(NEW_MEMBER) == 1
        assert mirror_cloud.templates_of(NEW_MEMBER) == 1
        assert [t.member_id for t in b.replica.templates()].count(NEW_MEMBER) == 1
        mirror.scene.show([BLANK])  # she steps away and comes back, facing the mirror
        page.locator("#cancel").click()
        expect(body).to_have_attribute("data-state", "attract", timeout=UI_S)
        mirror.scene.show(turns[8:20])
        expect(body).to_have_attribute("data-state", "member", timeout=FLOW_S)  # A now knows her face
        expect(page.locator("#greeting")).to_contain_text(mask_name(NEW_NAME))

        page.locator("#manage-consent").click()
        expect(body).to_have_attribute("data-step", "scan", timeout=UI_S)
        mirror.scene.show([qr_frame(mirror_cloud.mint(NEW_MEMBER))])  # the mini-program's code of now
        expect(body).to_have_attribute("data-step", "consent", timeout=FLOW_S)
        expect(page.locator("#withdraw")).to_be_visible()
        page.locator("#withdraw").click()
        expect(body).to_have_attribute("data-step", "withdrawn", timeout=UI_S)
        shot(page, "mirror-withdrawn.png")
        assert NEW_MEMBER not in [t.member_id for t in a.replica.templates()]  # gone here at once
    finally:
        mirror.close()
    a.sync_once()
    b.sync_once()  # one sync cycle
    assert mirror_cloud.templates_of(NEW_MEMBER) == 0
    assert NEW_MEMBER not in [t.member_id for t in b.replica.templates()]

"""Pay-by-face end to end against the real device pieces and a real cloud on loopback.

GIVEN a reference cloud seeded with the demo cast and an enrolled, synced π-POS (fake printer,
scanner and drawer; a replayed depth camera registered to the RGB frames)
WHEN a member's face (a photo of them not used for enrollment) pays
THEN the sale is authorised and captured once, the receipt carries the amount, the points and the
e-receipt QR code, and the cloud's ledger has the payment (and, after sync, the points).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from device.config import load_config
from device.demo import BUILTIN_CAST, BUILTIN_STRANGERS
from device.pos import store
from device.pos.receipt import qr_text
from drivers.camera.depth import NpyDepthReplay
from drivers.camera.fake import FakeCamera
from drivers.camera.replay import decode_still
from tests.pos.conftest import cli, counter_app, enroll_device, face_depth

MEMBER_PHOTO = BUILTIN_CAST / "intel_head_pose" / "frame_21.jpg"
STRANGER_PHOTO = BUILTIN_STRANGERS / "intel_walker_man_34.jpg"


class Screens:
    """Collects what the app publishes (the kiosk server's publish, without a browser)."""

    def __init__(self) -> None:
        self.models: list[tuple[str, dict]] = []

    def __call__(self, view: str, model: dict) -> None:
        from kiosk_ui.pos_contract import validate_pos_model

        validate_pos_model(view, model)  # every model the app makes keeps to the contract
        self.models.append((view, model))

    def last(self, view: str) -> dict:
        return next(m for v, m in reversed(self.models) if v == view)


def _depth_dir(tmp_path, rgb, detector, relief_mm):
    """One registered depth frame for this RGB frame (what the depth module would give), as .npy."""
    face = max(detector.detect(rgb), key=lambda f: f.width * f.height)
    h, w = rgb.shape[:2]
    sx, sy = 640 / w, 480 / h
    box = (face.box[0] * sx, face.box[1] * sy, face.box[2] * sx, face.box[3] * sy)
    nose = (face.keypoints[2][0] * sx, face.keypoints[2][1] * sy)
    d = tmp_path / f"depth-{relief_mm}"
    d.mkdir(exist_ok=True)
    np.save(d / "000.npy", face_depth((480, 640), box, nose, relief_mm=relief_mm))
    return d


@pytest.fixture(scope="module")
def flagship(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("flagship")
    cfg = load_config(enroll_device(cloud, root, "pos-flagship"))
    screens = Screens()
    with counter_app(cfg, screens, depth=NpyDepthReplay(root, loop=True)) as app:
        yield cfg, app, screens, root


def _attempt(app, tmp_path, photo, relief_mm, amount_cents=12800):
    """Cashier types the amount, the customer chooses face pay in front of `photo` with that depth."""
    rgb = decode_still(photo)
    app.camera = FakeCamera([rgb] * 3)
    app.face.depth = NpyDepthReplay(_depth_dir(tmp_path, rgb, app.face.detector, relief_mm), loop=True)
    app.camera.open()
    app.face.depth.open()
    app.handle("pos-cashier", {"action": "new"})
    app.handle("pos-cashier", {"action": "amount", "cents": amount_cents})
    app.handle("pos-customer", {"action": "face"})
    app.run_face_step()
    return app.checkout.state


def test_member_pays_by_face_online_and_the_cloud_has_it(flagship, cloud, tmp_path):
    cfg, app, screens, _ = flagship
    member = cloud.member("intel_head_pose")
    state = _attempt(app, tmp_path, MEMBER_PHOTO, relief_mm=25.0)
    face = app.audit.entries("face")[-1]["data"]
    assert face["liveness"] is True and face["candidates"][0][0] == member["member_id"], face
    if state == "phone":  # the match is not clear-cut enough for the payment threshold
        phone = app.replica.member(member["member_id"])["phone_last4"]
        app.handle("pos-customer", {"action": "phone", "digits": phone})
    assert app.checkout.state == "confirm", app.checkout.message
    assert screens.last("pos-customer")["due"] and screens.last("pos-customer")["member"].startswith("*")
    # The customer presses confirm twice (and the cashier's tap arrives late): one payment.
    threads = [threading.Thread(target=app.handle, args=("pos-customer", {"action": "confirm"})) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    app.handle("pos-customer", {"action": "confirm"})
    out = app.checkout.outcome()
    assert out["state"] == "paid", out["message"]
    sale = out["sale"]
    assert sale["mode"] == "online" and sale["member_id"] == member["member_id"]
    assert sale["paid_cents"] == 12800 - sale["discount_cents"] and sale["points"] == sale["paid_cents"] // 100

    rows = cloud.query("SELECT payment_id, amount_cents, status, captured_cents, device_id FROM payments "
                       "WHERE idempotency_key LIKE ?", sale["sale_id"] + "%")
    assert rows == [(sale["payment_id"], sale["paid_cents"], 3, sale["paid_cents"], cfg.device.id)]
    assert cloud.query("SELECT amount_cents FROM transactions WHERE txn_id = ?", sale["payment_id"]) == [
        (sale["paid_cents"],)]
    # The receipt: GB18030 text with the amount, the points, the audit anchor and the e-receipt QR.
    printed = app.printer.jobs()
    assert f"{sale['paid_cents'] // 100}.{sale['paid_cents'] % 100:02d}".encode() in printed
    assert "刷脸积分".encode("gb18030") in printed and sale["anchor"].encode() in printed
    assert qr_text(sale["sale_id"]).encode() in printed
    assert printed.count(b"\x1dV") >= 1  # cut
    # After sync the points reach the cloud's ledger through the outbox.
    cli("joyedge", "sync", "--config", str(cfg_path(cfg)), "--once")
    assert cloud.query("SELECT delta FROM points_ledger WHERE member_id = ? AND reason = ?",
                       member["member_id"], "刷脸积分")[-1:] == [(sale["points"],)]
    assert app.audit.verify([sale["anchor"]]).ok


def cfg_path(cfg):
    return next(p for p in cfg.device.data_dir.parent.glob("*.toml") if cfg.device.id in p.name)


def test_photo_on_flat_depth_is_refused_and_pays_nothing(flagship, cloud, tmp_path):
    _, app, _, _ = flagship
    before = cloud.query("SELECT count(*) FROM payments")[0][0]
    assert _attempt(app, tmp_path, MEMBER_PHOTO, relief_mm=0.0) == "refused"
    assert "活体" in app.checkout.message
    app.handle("pos-customer", {"action": "confirm"})
    assert app.checkout.state == "refused"
    assert cloud.query("SELECT count(*) FROM payments")[0][0] == before
    entry = app.audit.entries("face")[-1]["data"]
    assert entry["liveness"] is False and entry["decision"] == "refused" and entry["candidates"] == []


def test_wrong_person_does_not_pay(flagship, cloud, tmp_path):
    _, app, _, _ = flagship
    before = (cloud.query("SELECT count(*) FROM payments")[0][0], len(store.sales(app.replica)))
    state = _attempt(app, tmp_path, STRANGER_PHOTO, relief_mm=25.0)
    if state == "phone":  # a look-alike above the match threshold: they cannot know the member's phone
        for digits in ("0000", "1111", "2222"):
            app.handle("pos-customer", {"action": "phone", "digits": digits})
    assert app.checkout.state == "refused", app.checkout.outcome()
    app.handle("pos-customer", {"action": "confirm"})
    assert (cloud.query("SELECT count(*) FROM payments")[0][0], len(store.sales(app.replica))) == before


def test_large_gallery_asks_for_the_phone_digits_before_paying(flagship, cloud, tmp_path):
    """At a site with thousands of consenting members a face alone seldom clears the payment threshold:
    the same member, the same photo, who pays on the face alone at a small site is asked for the phone
    digits once the gallery is large (device/open_set.py), and the audit entry records the threshold."""
    _, app, _, _ = flagship
    member = cloud.member("intel_head_pose")
    small = app.identifier.thresholds()
    rng = np.random.default_rng(11)
    padding = [(f"pad-member-{i}", v, 1.0, f"pad-template-{i}") for i, v in enumerate(rng.normal(size=(3_000, 128)))]
    gallery = app.identifier.gallery
    gallery.apply_delta(padding)  # made-up members in random directions: they never match, they only count
    try:
        large = app.identifier.thresholds()
        assert large.payment > small.payment and large.templates == small.templates + 3_000
        assert _attempt(app, tmp_path, MEMBER_PHOTO, relief_mm=25.0) == "phone"
        face = app.audit.entries("face")[-1]["data"]
        score = face["candidates"][0][1]
        assert face["candidates"][0][0] == member["member_id"] and face["decision"] == "phone"
        assert face["thresholds"] == [round(large.base, 4), round(large.payment, 4)]
        assert small.payment <= score < large.payment  # enough at a small site, not at a large one
        phone = app.replica.member(member["member_id"])["phone_last4"]
        app.handle("pos-customer", {"action": "phone", "digits": phone})
        assert app.checkout.state == "confirm"  # the digits, not the face alone, settled it
    finally:
        gallery.apply_delta([], removed=[row[3] for row in padding])
        app.handle("pos-cashier", {"action": "new"})
    assert app.identifier.thresholds() == small

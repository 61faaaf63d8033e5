"""π-POS mobile: challenge-response liveness from the face mesh instead of depth.

GIVEN an enrolled π-POS mobile and the head-turning clip of an enrolled member (the demo cast's
intel_head_pose comes from that clip)
WHEN the challenge asks for a left and a right turn
THEN the clip passes and the member is matched; the same member's still photo replayed as video
fails the challenge, is never searched, and pays nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageSequence

import device.pos.face as face_mod
from device.config import load_config
from drivers.camera.fake import FakeCamera
from drivers.camera.replay import decode_still
from tests.pos.conftest import counter_app, enroll_device
from tests.pos.test_pay_by_face import MEMBER_PHOTO, Screens

GIF = "video/intel_head-pose-face-detection-female.gif"


@pytest.fixture(scope="module")
def mobile(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("mobile")
    cfg = load_config(enroll_device(cloud, root, "pos-mobile"))
    with counter_app(cfg, Screens(), actions=["turn_left", "turn_right"]) as app:
        yield app


def _start(app, frames):
    app.camera = FakeCamera(frames)
    app.camera.open()
    app.handle("pos-cashier", {"action": "new"})
    app.handle("pos-cashier", {"action": "amount", "cents": 2500})
    app.handle("pos-customer", {"action": "face"})
    app.run_face_step()


def test_head_turning_member_passes_the_challenge_and_is_matched(mobile, cloud, shared_data):
    with Image.open(shared_data / GIF) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    prompts = []
    app = mobile
    app.publish = lambda view, model: prompts.append(model.get("challenge", "")) if view == "pos-customer" else None
    _start(app, frames * 2)
    entry = app.audit.entries("face")[-1]["data"]
    assert entry["liveness"] is True and entry["method"] == "challenge", entry
    assert entry["candidates"][0][0] == cloud.member("intel_head_pose")["member_id"]
    assert app.checkout.state in ("confirm", "phone")
    assert any("左" in p for p in prompts) and any("右" in p for p in prompts)  # the customer was told what to do


def test_still_photo_fails_the_challenge_and_pays_nothing(mobile, cloud, monkeypatch):
    monkeypatch.setattr(face_mod, "CHALLENGE_STEP_S", 0.5)  # the photo would fail after 5 s just the same
    before = cloud.query("SELECT count(*) FROM payments")[0][0]
    still = decode_still(MEMBER_PHOTO)
    _start(mobile, [still] * 10_000)
    assert mobile.checkout.state == "refused" and "活体" in mobile.checkout.message
    entry = mobile.audit.entries("face")[-1]["data"]
    assert entry["liveness"] is False and "not seen within" in entry["detail"] and entry["candidates"] == []
    mobile.handle("pos-customer", {"action": "confirm"})
    assert cloud.query("SELECT count(*) FROM payments")[0][0] == before

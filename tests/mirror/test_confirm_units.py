"""The mirror's phone-digits confirmation without camera or browser: a real MirrorApp over a real replica and
gallery (thresholds that follow its size), fed the pipeline's events with embeddings of chosen similarity,
and touch actions checked by the kiosk contract as the server checks them. Every published model goes
through the mirror contract too.

The members' templates and the ~2,000 made-up members are random unit vectors, so a probe built at cosine
0.95 to a member's template is accepted (>= 0.93, margin far above 0.02) but under the greeting threshold
of the padded gallery (~0.977 with the shipped tail), and one at 0.99 is above it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from api.v1 import crm_pb2, sync_pb2
from device import app as app_mod
from device.app import MirrorApp
from drivers.camera.fake import FakeCamera
from inference.pipeline import TrackEmbedded
from kiosk_ui.contract import validate_action, validate_mirror_model
from kiosk_ui.errors import KioskError
from sync.crypto import TemplateCipher
from sync.outbox import Outbox
from sync.replica import Replica
from tests.mirror.confirm_helpers import add_templates, pad_gallery, sized_identifier, unit_vectors

MEMBERS = {  # member id → (name, tier, points, phone_last4)
    "M1": ("王建", "璀璨卡", 7865, "4321"),
    "M2": ("李娜", "金卡", 2310, "8765"),
    "M3": ("张伟", "普卡", 120, ""),  # no phone on record
}
WEAK, STRONG = 0.95, 0.99
TEMPLATES = dict(zip(MEMBERS, unit_vectors(len(MEMBERS), 1), strict=True))
PERSONAL = ("tier", "points", "tier_keep_points", "coupons", "stars", "visit_cycle", "find_car", "can_enroll")


def make_replica(path, padded: bool) -> Replica:
    replica = Replica(path / "replica.db", TemplateCipher(path / "identity"))
    members = [crm_pb2.Member(member_id=mid, name=name, tier=tier, points=points, tier_keep_points=10_000,
                              phone_last4=phone, site_id="site-1") for mid, (name, tier, points, phone) in MEMBERS.items()]
    replica.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_MEMBERS, next_seq=len(members), changes=[
        sync_pb2.Change(seq=i + 1, key=m.member_id, member=m) for i, m in enumerate(members)]))
    add_templates(replica, [(f"t-{mid}", mid, v) for mid, v in TEMPLATES.items()])
    if padded:
        pad_gallery(replica)
    return replica


class Mirror:
    """A MirrorApp driven by hand: faces (pipeline events), taps (contract-checked actions), the glass."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.published: list[dict[str, Any]] = []
        self.app = MirrorApp(camera=FakeCamera([]), pipeline=None, replica=replica, identifier=sized_identifier(),
                             store_id="store-1", timezone=None, publish=self._publish)
        self.app.reload_gallery_if_changed(force=True)
        self.rng = np.random.default_rng(5)

    def _publish(self, view: str, model: dict[str, Any]) -> None:
        assert view == "mirror"
        validate_mirror_model(model)
        self.published.append(model)

    @property
    def glass(self) -> dict[str, Any]:
        return self.published[-1]

    def face(self, track: int, member: str, cos: float) -> None:
        """The pipeline embedded ``track``: a face at cosine ``cos`` to ``member``'s template."""
        t = TEMPLATES[member].astype(np.float64)
        u = self.rng.normal(size=t.size)
        u -= u.dot(t) * t
        probe = cos * t + math.sqrt(1 - cos * cos) * u / np.linalg.norm(u)
        self.app._on_embedding(TrackEmbedded(track, probe.astype(np.float32), 1.0, (0, 0, 100, 100), None, 0.0))

    def stranger(self, track: int) -> None:
        self.app._on_embedding(TrackEmbedded(track, unit_vectors(1, 99 + track)[0], 1.0, (0, 0, 100, 100), None, 0.0))

    def leaves(self, track: int) -> None:
        self.app._on_track_end(track, True, None)

    def tap(self, **action: Any) -> None:
        self.app._actions.put(validate_action("mirror", action))  # what the kiosk server hands over
        self.app._drain_actions()

    def digits(self, card: str, member: str, right: bool = True) -> None:
        phone = MEMBERS[member][3]
        self.tap(action="confirm_phone", card=card, digits=phone if right else f"{(int(phone) + 1) % 10_000:04d}")

    def visits(self) -> list[str]:
        return [e.visit.member_id for e in Outbox(self.replica).pending() if e.WhichOneof("payload") == "visit"]


@pytest.fixture
def large(tmp_path) -> Iterator[Mirror]:
    replica = make_replica(tmp_path, padded=True)
    mirror = Mirror(replica)
    limits = mirror.app.identifier.thresholds()
    assert limits.base <= WEAK < limits.greet <= STRONG, limits  # the precondition, not assumed
    yield mirror
    replica.close()


def test_weak_match_asks_and_only_the_right_digits_greet(large, caplog):
    caplog.set_level(logging.INFO)
    large.face(1, "M1", WEAK)
    asked = large.glass
    assert asked["state"] == "confirm" and asked["tries_left"] == 3 and "error" not in asked
    assert not set(PERSONAL) & set(asked)
    assert not any(v in str(asked) for v in ("王建", "*建", "璀璨卡", "7865"))
    assert large.visits() == []
    large.digits(asked["card"], "M1", right=False)
    assert large.glass["state"] == "confirm" and large.glass["tries_left"] == 2
    assert large.glass["error"].startswith("手机尾号不符，请重试") and large.glass["card"] == asked["card"]
    large.digits(asked["card"], "M1")
    card = large.glass
    assert card["state"] == "member" and card["greeting"].startswith("*建，") and card["card"] != asked["card"]
    assert large.visits() == ["M1"]
    large.digits(asked["card"], "M1")  # a second submit of the old keypad: ignored
    assert large.glass is card and large.visits() == ["M1"]
    assert large.app.stats.counts == {"confirm_asked": 1, "confirm_ok": 1, "confirm_failed": 0, "confirm_skipped": 0,
                                      "confirm_locked": 0}
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "digits do not match" in logged and "4321" not in logged and "4322" not in logged


def test_a_later_strong_embedding_of_the_same_track_greets_directly(large):
    large.face(1, "M1", WEAK)
    keypad = large.glass["card"]
    large.face(1, "M1", WEAK)  # still weak: the same keypad stays, nothing republished
    assert large.glass["card"] == keypad and len(large.published) == 1
    large.face(1, "M1", STRONG)
    assert large.glass["state"] == "member" and large.visits() == ["M1"]
    shown = len(large.published)
    large.digits(keypad, "M1")  # the replaced keypad's tap is ignored
    assert len(large.published) == shown and large.visits() == ["M1"]
    assert large.app.stats.counts["confirm_ok"] == 0


def test_track_ending_while_confirming_drops_the_keypad(large, monkeypatch):
    large.face(1, "M1", WEAK)
    keypad = large.glass["card"]
    large.leaves(1)
    assert large.glass["state"] == "confirm"  # the usual leaving: the screen stays until the attract loop
    large.digits(keypad, "M1")
    assert large.glass["state"] == "confirm" and large.visits() == []  # its card is no longer pending
    monkeypatch.setattr(app_mod, "ATTRACT_AFTER_S", 0.0)
    large.app._idle()
    assert large.glass["state"] == "attract"


def test_track_ending_while_someone_else_stays_shows_them_the_welcome(large):
    large.face(1, "M1", WEAK)
    large.stranger(2)
    assert large.glass["state"] == "confirm"  # a stranger's first look does not take the keypad away
    large.leaves(1)
    assert large.glass["state"] == "welcome" and large.visits() == []


def test_another_member_replaces_the_keypad_and_old_taps_are_ignored(large):
    large.face(1, "M1", WEAK)
    first = large.glass["card"]
    large.face(2, "M2", WEAK)
    second = large.glass["card"]
    assert large.glass["state"] == "confirm" and second != first
    large.digits(first, "M1")  # typed on the keypad that was just replaced
    assert large.glass["card"] == second and large.visits() == []
    large.digits(second, "M1")  # M1's digits are wrong for M2
    assert large.glass["tries_left"] == 2
    large.digits(second, "M2")
    assert large.glass["state"] == "member" and large.glass["greeting"].startswith("*娜，")
    assert large.visits() == ["M2"] and large.app.stats.counts["confirm_asked"] == 2


def test_three_wrong_tries_refuse_the_track_for_the_rest_of_its_life(large):
    large.face(1, "M1", WEAK)
    keypad = large.glass["card"]
    for left in (2, 1):
        large.digits(keypad, "M1", right=False)
        assert large.glass["tries_left"] == left and f"{left} 次" in large.glass["error"]
    large.digits(keypad, "M1", right=False)
    assert large.glass["state"] == "welcome" and large.app.stats.counts["confirm_failed"] == 1
    shown = len(large.published)
    large.face(1, "M1", WEAK)
    large.face(1, "M1", STRONG)  # not even a strong look greets this track now
    large.digits(keypad, "M1")
    assert len(large.published) == shown and large.visits() == []
    large.leaves(1)
    large.face(3, "M1", WEAK)  # she comes back: a new track is asked afresh
    assert large.glass["state"] == "confirm" and large.glass["tries_left"] == 3


def test_walking_back_does_not_give_a_guesser_endless_tries(large):
    """Tries are per track; per member, 5 wrong entries in 10 minutes stop the keypad for that member."""
    large.face(1, "M1", WEAK)
    for _ in range(3):
        large.digits(large.glass["card"], "M1", right=False)
    large.leaves(1)
    large.face(2, "M1", WEAK)  # walks back: a new track, asked again ...
    assert large.glass["state"] == "confirm"
    for _ in range(2):  # ... but the 5th wrong entry for M1 locks the keypad for M1
        large.digits(large.glass["card"], "M1", right=False)
    assert large.glass["state"] == "welcome" and large.app.stats.counts["confirm_locked"] == 1
    large.leaves(2)
    large.face(3, "M1", WEAK)
    assert large.glass["state"] == "welcome" and large.app.stats.counts["confirm_asked"] == 2  # not asked
    large.face(4, "M2", WEAK)  # another member is asked as usual
    assert large.glass["state"] == "confirm"
    large.leaves(4)
    large.leaves(3)
    large.app._member_locked = {m: 0.0 for m in large.app._member_locked}  # 15 minutes later
    large.face(5, "M1", WEAK)
    assert large.glass["state"] == "confirm" and large.glass["tries_left"] == 3
    large.digits(large.glass["card"], "M1")
    assert large.glass["state"] == "member" and large.visits() == ["M1"]


def test_a_member_who_confirmed_today_is_greeted_on_the_next_pass(large):
    """Once M1 proved who she is, she is one of a few members known to be here (device/open_set.py):
    her next weak-but-accepted look is greeted without the digits; another member still is asked;
    "not me" or four hours end it."""
    large.face(1, "M1", WEAK)
    large.digits(large.glass["card"], "M1")
    assert large.glass["state"] == "member"
    limits = large.app.identifier.thresholds(["M1"])
    assert limits.greet_present <= WEAK < limits.greet  # the precondition, from the policy itself
    large.leaves(1)
    large.face(2, "M1", WEAK)  # an hour later, walking past again
    assert large.glass["state"] == "member" and large.glass["greeting"].startswith("*建，")
    assert large.visits() == ["M1", "M1"] and large.app.stats.counts["confirm_asked"] == 1
    large.leaves(2)
    large.face(3, "M2", WEAK)  # nobody vouched for M2 today
    assert large.glass["state"] == "confirm"
    large.leaves(3)
    large.face(4, "M1", WEAK)
    large.tap(action="not_me", card=large.glass["card"])  # it was not her after all
    large.leaves(4)
    large.face(5, "M1", STRONG)  # her template now weighs 0.95: 0.99 scores 0.94, over 0.93, under greet
    assert large.glass["state"] == "confirm"  # not present any more: back to the digits
    large.digits(large.glass["card"], "M1")
    large.leaves(5)
    large.app._present = {m: 0.0 for m in large.app._present}  # four hours later
    large.face(6, "M1", STRONG)
    assert large.glass["state"] == "confirm"


def test_skip_refuses_the_track(large):
    large.face(1, "M1", WEAK)
    large.tap(action="confirm_skip", card=large.glass["card"])
    assert large.glass["state"] == "welcome" and large.app.stats.counts["confirm_skipped"] == 1
    large.face(1, "M1", STRONG)
    assert large.glass["state"] == "welcome" and large.visits() == []


def test_votes_that_stop_agreeing_withdraw_the_keypad(large):
    large.face(1, "M1", WEAK)
    keypad = large.glass["card"]
    large.face(1, "M2", WEAK)  # the same track now looks like somebody else: no verdict
    assert large.glass["state"] == "welcome"
    large.digits(keypad, "M1")
    assert large.glass["state"] == "welcome" and large.visits() == []


def test_a_member_without_phone_digits_is_not_asked(large):
    large.face(1, "M3", WEAK)
    assert large.glass["state"] == "welcome" and large.app.stats.counts["confirm_asked"] == 0


def test_small_gallery_greets_directly(tmp_path):
    replica = make_replica(tmp_path, padded=False)
    try:
        mirror = Mirror(replica)
        limits = mirror.app.identifier.thresholds()
        assert limits.greet == limits.base <= WEAK
        mirror.face(1, "M1", WEAK)
        assert mirror.glass["state"] == "member" and mirror.visits() == ["M1"]
        assert mirror.app.stats.counts["confirm_asked"] == 0
    finally:
        replica.close()


def test_contract_keeps_the_keypad_neutral_and_the_digits_unechoed():
    base = {"state": "confirm", "card": "c-1", "greeting": "您好，下午好！", "message": "…", "tries_left": 3}
    validate_mirror_model(base)
    for extra in ({"tier": "金卡"}, {"points": 1}, {"coupons": []}, {"tries_left": 0}, {"tries_left": 4}):
        with pytest.raises(KioskError):
            validate_mirror_model(base | extra)
    assert validate_action("mirror", {"action": "confirm_phone", "card": "c-1", "digits": "0427"})
    for digits in ("042", "04270", "04a7", "０４２７", ""):
        with pytest.raises(KioskError) as err:
            validate_action("mirror", {"action": "confirm_phone", "card": "c-1", "digits": digits})
        assert digits not in str(err.value) or not digits
    with pytest.raises(KioskError):
        validate_action("mirror", {"action": "confirm_skip"})

"""The phone's last four digits before a weak match is greeted (a mixin of MirrorApp).

At a large site a stranger's face is compared with every consenting member, so a match that clears the
calibrated threshold may still be somebody else (device/open_set.py: the greeting threshold rises with the
gallery). When every accepted decision of a track was under that greeting threshold, the mirror shows the
"confirm" screen instead of the card: a neutral greeting, a keypad for the last four digits of the member's
phone and a skip button — nothing of the member row. Right digits greet the member (visit recorded only
then); 3 wrong tries or a skip give the neutral welcome, and that track is neither asked nor greeted again.
The digits are compared here and never logged or stored.
"""

from __future__ import annotations

import hmac
import logging
import time
from datetime import datetime
from typing import Any

from device.greeting import time_greeting, time_greeting_en
from device.identity import Decision

_LOG = logging.getLogger("device.app")

CONFIRM_TRIES = 3  # wrong entries a track gets before it is refused (kiosk_ui.contract.CONFIRM_MAX_TRIES)
CONFIRM_COUNTERS = ("confirm_asked", "confirm_ok", "confirm_failed", "confirm_skipped", "confirm_locked")
# Tries are per track, so walking away and back would give a guesser 3 more each time. Per member: this
# many wrong entries within MEMBER_LOCK_WINDOW_S stop the keypad for that member for MEMBER_LOCK_S (the
# face alone still greets them when strong enough). Kept in RAM: a restart forgets, which costs a guesser
# a reboot of the mirror per 5 tries — no better than walking back.
# A member greeted here (by a strong look or by the digits) counts as present for this long: a later
# match to them is held to the present members' greeting threshold (device/open_set.py), so they are not
# asked for the digits at every pass. At most MAX_PRESENT members (the oldest drop out first). RAM only.
PRESENT_S = 4 * 3600.0
MAX_PRESENT = 200
MEMBER_LOCK_WRONG = 5
MEMBER_LOCK_WINDOW_S = 600.0
MEMBER_LOCK_S = 900.0


def confirm_view(card: str, now: datetime, tries_left: int, wrong: bool = False) -> dict[str, Any]:
    """The "confirm" view model: neutral texts, the card the keypad's taps name, and the last refusal."""
    view: dict[str, Any] = {
        "state": "confirm",
        "card": card,
        "greeting": f"您好，{time_greeting(now)}！",
        "greeting_en": f"Hello, {time_greeting_en(now).lower()}!",
        "message": "会员请输入手机尾号后四位，查看会员权益",
        "message_en": "Member? Enter the last 4 digits of your phone to see your benefits",
        "tries_left": tries_left,
    }
    if wrong:
        view["error"] = f"手机尾号不符，请重试（还可尝试 {tries_left} 次）"
        view["error_en"] = f"The digits do not match, please try again ({tries_left} {'try' if tries_left == 1 else 'tries'} left)"
    return view


class PhoneConfirm:
    """The second-factor half of `device.app.MirrorApp` (uses its state: stats, replica, _view, _refused…)."""

    stats: Any
    replica: Any
    _cards: Any
    _card: dict[str, Any] | None
    _view: dict[str, Any]
    _showing: str
    _votes: dict[int, Any]
    _refused: set[int]
    _greeted: dict[int, str | None]

    def _init_confirm(self) -> None:
        self._confirm: dict[str, Any] | None = None  # the keypad on the glass: id, member_id, decision, track
        self._confirm_wrong: dict[int, int] = {}  # wrong entries per live track (kept when its screen is replaced)
        self._confirm_asked: set[int] = set()  # live tracks asked at least once (counted once each)
        self._strong: set[int] = set()  # live tracks with an accepted decision at or above the greeting threshold
        self._member_wrong: dict[str, list[float]] = {}  # member → monotonic times of recent wrong entries
        self._member_locked: dict[str, float] = {}  # member → monotonic time the keypad is offered again
        self._present: dict[str, float] = {}  # member → monotonic time they stop counting as present

    def present_members(self) -> list[str]:
        """Members greeted here within PRESENT_S (expired ones are dropped)."""
        now = time.monotonic()
        for member in [m for m, until in self._present.items() if until <= now]:
            del self._present[member]
        return list(self._present)

    def _mark_present(self, member_id: str) -> None:
        self._present.pop(member_id, None)  # re-inserted last: the dict's order is the eviction order
        self._present[member_id] = time.monotonic() + PRESENT_S
        while len(self._present) > MAX_PRESENT:
            del self._present[next(iter(self._present))]

    def _confirm_locked(self, member_id: str) -> bool:
        until = self._member_locked.get(member_id)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._member_locked[member_id]
            return False
        return True

    def _note_wrong(self, member_id: str) -> None:
        now = time.monotonic()
        recent = [t for t in self._member_wrong.get(member_id, []) if now - t < MEMBER_LOCK_WINDOW_S] + [now]
        self._member_wrong[member_id] = recent
        if len(recent) >= MEMBER_LOCK_WRONG:
            self._member_locked[member_id] = now + MEMBER_LOCK_S
            self._member_wrong.pop(member_id, None)
            self.stats.count("confirm_locked")
            _LOG.warning("mirror: %d wrong phone digits for member %s within %.0f s: no keypad for them for %.0f s",
                         len(recent), member_id, MEMBER_LOCK_WINDOW_S, MEMBER_LOCK_S)

    def _ask_confirm(self, track_id: int, member_id: str, decision: Decision) -> None:
        """Show the keypad for ``member_id`` on ``track_id`` (kept as it is when already asking that)."""
        pending = self._confirm
        if pending is not None and pending["track"] == track_id and pending["member_id"] == member_id:
            return  # a later, still weak embedding of the same shopper: keep the keypad and its tries
        self._greeted[track_id] = None
        if self._confirm_locked(member_id):
            _LOG.info("track %d: member %s under the greeting threshold, keypad locked after wrong digits: not greeted",
                      track_id, member_id)
            if self._showing not in ("member", "confirm"):
                self._show(self._welcome(track_id), "welcome")
            return
        member = self.replica.member(member_id)
        if member is None or len(str(member.get("phone_last4") or "")) != 4:
            # Nothing to check the digits against: no greeting, and no keypad that could never succeed.
            _LOG.info("track %d: member %s under the greeting threshold and no phone digits on record: not greeted",
                      track_id, member_id)
            if self._showing not in ("member", "confirm"):
                self._show(self._welcome(track_id), "welcome")
            return
        if track_id not in self._confirm_asked:
            self._confirm_asked.add(track_id)
            self.stats.count("confirm_asked")
        card = f"c-{next(self._cards)}"
        self._confirm = {"id": card, "member_id": member_id, "decision": decision, "track": track_id}
        self._card = None  # a member card that was on the glass is gone: its taps are ignored from now on
        _LOG.info("track %d: member %s under the greeting threshold (score %.3f): asking for the phone digits",
                  track_id, member_id, decision.score)
        left = CONFIRM_TRIES - self._confirm_wrong.get(track_id, 0)
        self._show(confirm_view(card, self._now(), left, wrong=left < CONFIRM_TRIES), "confirm")

    def _confirm_action(self, action: dict[str, Any]) -> None:
        """``confirm_phone`` / ``confirm_skip`` from the keypad; a tap for a keypad no longer shown is ignored."""
        name, pending = action["action"], self._confirm
        if pending is None or action.get("card") != pending["id"] or self._view.get("card") != pending["id"]:
            _LOG.info("mirror: %s for card %s ignored: that card is no longer shown", name, action.get("card"))
            return
        track = pending["track"]
        if name == "confirm_skip":
            self.stats.count("confirm_skipped")
            _LOG.info("mirror: track %d skipped the phone digits", track)
            self._refuse_confirm(track)
            return
        member = self.replica.member(pending["member_id"]) or {}
        expected = str(member.get("phone_last4") or "")
        typed = str(action.get("digits", ""))
        # Constant time, and never logged: the digits are a second factor, however short.
        if len(expected) == 4 and hmac.compare_digest(typed.encode(), expected.encode()):
            self.stats.count("confirm_ok")
            _LOG.info("mirror: track %d: phone digits confirm member %s", track, pending["member_id"])
            self._confirm = None
            if not self._greet(track, pending["member_id"], pending["decision"]):
                self._show(self._welcome(track), "welcome")  # the member left the replica meanwhile
            return
        wrong = self._confirm_wrong.get(track, 0) + 1
        self._confirm_wrong[track] = wrong
        _LOG.info("mirror: track %d: digits do not match (%d of %d tries)", track, wrong, CONFIRM_TRIES)
        self._note_wrong(pending["member_id"])
        if self._confirm_locked(pending["member_id"]):
            self.stats.count("confirm_failed")
            self._refuse_confirm(track)
            return
        if wrong >= CONFIRM_TRIES:
            self.stats.count("confirm_failed")
            self._refuse_confirm(track)
            return
        self._show(confirm_view(pending["id"], self._now(), CONFIRM_TRIES - wrong, wrong=True), "confirm")

    def _refuse_confirm(self, track_id: int) -> None:
        # The track is neither asked nor greeted again while it lives; it stays counted as a face in front
        # of the mirror, so the welcome stays until the shopper leaves.
        self._confirm = None
        self._refused.add(track_id)
        self._greeted[track_id] = None
        self._show(self._welcome(track_id), "welcome")

    def _confirm_on_embedding(self, track_id: int, verdict: str | None) -> bool:
        """Before the usual greeting: the asked track's votes no longer agree on that member → stop asking."""
        pending = self._confirm
        if pending is None or pending["track"] != track_id or verdict == pending["member_id"]:
            return False
        _LOG.info("track %d: its faces no longer agree on member %s: keypad withdrawn", track_id, pending["member_id"])
        self._confirm = None
        self._show(self._welcome(track_id), "welcome")
        return True

    def _confirm_track_ended(self, track_id: int) -> None:
        """A track ended: forget its tries; a keypad shown for it is dropped (its taps are ignored from now)."""
        self._confirm_wrong.pop(track_id, None)
        self._confirm_asked.discard(track_id)
        self._strong.discard(track_id)
        pending = self._confirm
        if pending is None or pending["track"] != track_id:
            return
        self._confirm = None
        if self._votes:  # someone else is still in front of the mirror: no keypad for the one who left
            self._show(self._welcome(next(iter(self._votes))), "welcome")
        else:
            self._showing = "confirm-leaving"  # the attract screen follows as after a member card

"""Touch actions on the mirror: find my car, "not me", the enrollment taps and the phone-digits keypad
(a mixin of MirrorApp).

The kiosk server's HTTP threads only queue an action (`MirrorApp._actions`); the app's loop drains the
queue between frames, so every state change of the mirror happens on that one thread. A tap names the
member card it was made on; a tap on a card that is no longer shown is ignored, never applied to
whoever stands there now.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

import numpy as np

from device.identity import Decision
from device.mirror.find_car import CarResult
from sync.errors import SyncError

_LOG = logging.getLogger("device.app")


class TouchActions:
    """The action half of `device.app.MirrorApp` (uses its state: _card, _view, enrollment, pipeline…)."""

    _actions: queue.Queue
    _card: dict[str, Any] | None
    _view: dict[str, Any]
    enrollment: Any
    pipeline: Any
    identifier: Any
    replica: Any
    _lookup: Any
    _refused: set[int]
    _greeted: dict[int, str | None]
    _votes: dict[int, Any]
    _present: dict[str, float]

    def _drain_actions(self) -> None:
        while True:
            try:
                action = self._actions.get_nowait()
            except queue.Empty:
                return
            try:
                self._act(action)
            except SyncError as err:  # e.g. a full disk while recording feedback: the mirror goes on
                _LOG.error("mirror action %s failed: %s", action.get("action"), err)

    def _act(self, action: dict[str, Any]) -> None:
        name = action["action"]
        if name in ("confirm_phone", "confirm_skip"):  # the phone-digits keypad (device/mirror/confirm.py)
            self._confirm_action(action)
            return
        card = self._card
        if name in ("_car", "find_car", "not_me"):
            if card is None or action.get("card") != card["id"] or self._view.get("card") != card["id"]:
                _LOG.info("mirror: %s for card %s ignored: that card is no longer shown", name, action.get("card"))
                return
            if name == "_car":
                result: CarResult = action["result"]
                self._show({**self._view, "find_car": result.view()})
            elif name == "find_car":
                self._show({**self._view, "find_car": {"status": "searching", "message": "正在查询车位…",
                                                       "message_en": "Looking for your car…"}})
                assert self._lookup is not None
                self._lookup.submit(card["id"], card["member_id"])
            else:
                self._not_me(card)
            return
        flow = self.enrollment
        if flow is None:
            _LOG.info("mirror: %s ignored: enrollment is not available on this mirror", name)
            return
        if name == "enroll_start":
            self._card = None
            self._end_tracks()
            flow.start()
        elif name == "consent_agree":
            flow.agree(action["version"])
        elif name in ("consent_decline", "cancel"):
            flow.cancel()
        elif name == "withdraw":
            flow.withdraw()
        elif name == "retry":
            flow.retry()
        self._show_enroll()

    def _end_tracks(self) -> None:
        # The enrollment screen takes the camera; the faces tracked so far end here (counted, forgotten), so
        # the shopper is looked at afresh afterwards: a member enrolled a moment ago is then recognised.
        from inference.pipeline import TrackEnded

        tracker = getattr(self.pipeline, "tracker", None)
        empty = np.zeros((32, 32, 3), np.uint8)
        for _ in range(64):
            if tracker is None or not tracker.tracks:
                break
            for event in self.pipeline.process(empty, time.monotonic(), None):
                if isinstance(event, TrackEnded):
                    self._on_track_end(event.track_id, event.embedded, event.meta)

    def _not_me(self, card: dict[str, Any]) -> None:
        decision: Decision = card["decision"]
        factor = self.identifier.not_me(decision, self.replica)  # device table + outbox, one transaction
        _LOG.info("mirror: \"not me\" on card %s (member %s, template %s → factor %s)", card["id"],
                  card["member_id"], decision.template_id or "?", factor)
        track = card["track"]
        self._present.pop(card["member_id"], None)  # a wrong greeting: nobody proved to be them here
        self._refused.add(track)
        self._greeted[track] = None
        self._votes.pop(track, None)
        self._card = None
        self._show(self._welcome(track, ("抱歉认错了，感谢您的反馈", "Sorry for the mix-up, thanks for telling us")),
                   "welcome")

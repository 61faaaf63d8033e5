"""The hub between `KioskServer.publish` and the pages: the latest model per view, the condition
every event stream waits on for a newer version, and the touch-action subscribers per view."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final

VIEWS: Final = ("mirror", "pos-cashier", "pos-customer")
ActionCallback = Callable[[dict[str, Any]], None]


CLOSED: Final = object()


class Hub:
    """Latest serialised model per view; event streams wait on one condition for a newer version."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions = itertools.count(1)
        self._latest: dict[str, tuple[int, str] | None] = dict.fromkeys(VIEWS)
        self._latest["mirror"] = (next(self._versions), json.dumps({"state": "attract"}))
        self._clients = dict.fromkeys(VIEWS, 0)
        self._closed = False
        self._actions: dict[str, list[ActionCallback]] = {v: [] for v in VIEWS}

    def subscribe(self, view: str, callback: ActionCallback) -> Callable[[], None]:
        with self._cond:
            self._actions[view].append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._actions[view]:
                    self._actions[view].remove(callback)

        return unsubscribe

    def action_callbacks(self, view: str) -> list[ActionCallback]:
        with self._cond:
            return list(self._actions[view])

    def publish(self, view: str, payload: str) -> None:
        with self._cond:
            self._latest[view] = (next(self._versions), payload)
            self._cond.notify_all()

    def latest(self, view: str) -> tuple[int, str] | None:
        with self._cond:
            return self._latest[view]

    def wait_newer(self, view: str, seen: int | None, timeout: float) -> tuple[int, str] | None | object:
        """The view's model if newer than ``seen``; None when ``timeout`` passed first; CLOSED on stop."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return CLOSED
                current = self._latest[view]
                if current is not None and current[0] != seen:
                    return current
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def client_joined(self, view: str, delta: int) -> None:
        with self._cond:
            self._clients[view] += delta
            self._cond.notify_all()

    def clients(self) -> dict[str, int]:
        with self._cond:
            return dict(self._clients)

    def set_closed(self, closed: bool) -> None:
        with self._cond:
            self._closed = closed
            self._cond.notify_all()

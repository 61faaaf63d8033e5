"""Physical buttons and touch keys on evdev (the mirror's "call staff" button, a foot switch).

A press is a key-down of a watched code; presses closer than `DEBOUNCE_S` (event timestamps) are
one press, because cheap switches bounce and a shopper leans on a button.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drivers.inputs import codes as k
from drivers.inputs.evdev_source import Event, EventSource

_LOG = logging.getLogger(__name__)

DEBOUNCE_S = 0.3


@dataclass(frozen=True)
class ButtonPress:
    """One debounced press."""

    name: str
    code: int
    timestamp: float


class Buttons:
    """Watches one input device; `codes` maps key codes to names (empty: any key is `press`)."""

    backend = "evdev"

    def __init__(self, device: EventSource, codes: dict[int, str] | None = None) -> None:
        self.device = device
        self.codes = dict(codes or {})
        self._last: dict[int, float] = {}

    def open(self) -> None:
        """Open the input device."""
        self.device.open()

    def feed(self, event: Event) -> ButtonPress | None:
        """One event; a press when it is a debounced key-down of a watched code. Never raises."""
        try:
            sec, usec, etype, code, value = event
            t = float(sec) + float(usec) / 1e6
        except (TypeError, ValueError):
            _LOG.warning("buttons %s: ignoring a malformed event %r", self.device.path, event)
            return None
        if etype != k.EV_KEY or value != k.KEY_DOWN:
            return None
        if self.codes and code not in self.codes:
            _LOG.debug("buttons %s: ignoring key code %d", self.device.path, code)
            return None
        last = self._last.get(code)
        self._last[code] = t
        if last is not None and 0 <= t - last < DEBOUNCE_S:
            return None
        return ButtonPress(self.codes.get(code, "press"), code, t)

    def read(self, timeout: float) -> list[ButtonPress]:
        """Presses within `timeout`; PeripheralMissingError on unplug."""
        out = []
        for event in self.device.read_events(timeout):
            press = self.feed(event)
            if press is not None:
                out.append(press)
        return out

    def close(self) -> None:
        """Release the device."""
        self.device.close()

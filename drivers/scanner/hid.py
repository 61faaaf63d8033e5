"""HID keyboard-wedge scanners through evdev: key events → characters → a code at the terminator.

The device is grabbed exclusively so a scan never types into the kiosk browser. Decoding follows
the keymap the scanner is configured for (US by default), tracks shift, ends a code at the
terminator key, and drops a half-typed code when keys stop arriving for `INTER_KEY_TIMEOUT_S`
(measured on the events' own timestamps, so recorded streams decode the same way).
"""

from __future__ import annotations

import logging

from drivers.errors import ScannerError
from drivers.inputs import codes as k
from drivers.inputs.evdev_source import Event, EventSource
from drivers.scanner.base import MAX_BARCODE_LEN, Scanner, accept

_LOG = logging.getLogger(__name__)

INTER_KEY_TIMEOUT_S = 0.5  # a scanner types a code in tens of ms; a longer pause is a different thing


class KeyDecoder:
    """Turns `(sec, usec, type, code, value)` events into barcodes. Never raises on bad input."""

    def __init__(self, keymap: str = "us", terminator: str = "enter", source: str = "hid") -> None:
        if keymap not in k.KEYMAPS:
            raise ScannerError(f"unknown keymap {keymap!r}: choose {', '.join(k.KEYMAPS)}")
        if terminator not in k.TERMINATORS:
            raise ScannerError(f"unknown terminator {terminator!r}: choose {', '.join(k.TERMINATORS)}")
        self.keymap = k.KEYMAPS[keymap]
        self.terminators = k.TERMINATORS[terminator]
        self.source = source
        self._buf: list[str] = []
        self._overflow = False
        self._shift: set[int] = set()
        self._last_t: float | None = None

    def feed(self, event: Event) -> str | None:
        """One event; returns a completed barcode when this event was its terminator."""
        try:
            sec, usec, etype, code, value = event
            t = float(sec) + float(usec) / 1e6
        except (TypeError, ValueError):
            _LOG.warning("scanner %s: ignoring a malformed event %r", self.source, event)
            return None
        if etype != k.EV_KEY:
            return None  # SYN and MSC (scan codes) frame the key events; nothing to decode
        if code in k.SHIFT_KEYS:
            (self._shift.add if value else self._shift.discard)(code)
            return None
        if value != k.KEY_DOWN:
            return None  # key up, and autorepeat (a wedge never repeats on purpose)
        if self._last_t is not None and self._buf and t - self._last_t > INTER_KEY_TIMEOUT_S:
            _LOG.info("scanner %s: dropping a half-typed code after a %.2f s pause", self.source, t - self._last_t)
            self._reset()
        self._last_t = t
        if code in self.terminators:
            text, overflow = "".join(self._buf), self._overflow
            self._reset()
            if overflow:
                _LOG.warning("scanner %s: ignoring an over-long code (more than %d characters)", self.source, MAX_BARCODE_LEN)
                return None
            return accept(text, self.source)
        chars = self.keymap.get(code)
        if chars is None:
            _LOG.debug("scanner %s: ignoring unknown key code %d", self.source, code)
            return None
        if len(self._buf) >= MAX_BARCODE_LEN:
            self._overflow = True  # keep the memory bounded; the whole code is dropped at its end
            return None
        self._buf.append(chars[1] if self._shift else chars[0])
        return None

    def _reset(self) -> None:
        self._buf.clear()
        self._overflow = False


class HidScanner(Scanner):
    """A keyboard-wedge scanner on an evdev node (`/dev/input/by-id/…-event-kbd`)."""

    backend = "hid"

    def __init__(self, device: EventSource, *, keymap: str = "us", terminator: str = "enter") -> None:
        self.device = device
        self.source = device.path
        self.decoder = KeyDecoder(keymap, terminator, source=device.path)

    def open(self) -> None:
        self.device.open()

    def read(self, timeout: float) -> list[str]:
        out = []
        for event in self.device.read_events(timeout):
            code = self.decoder.feed(event)
            if code is not None:
                out.append(code)
        return out

    def close(self) -> None:
        self.device.close()


def key_events(text: str, keymap: str = "us", *, t0: float = 1000.0, step_s: float = 0.004,
               terminator: int = k.KEY_ENTER) -> list[Event]:
    """The event stream a wedge scanner sends for `text` (down/up, shift, SYN): to record fixtures."""
    reverse: dict[str, tuple[int, bool]] = {}
    for code, (plain, shifted) in sorted(k.KEYMAPS[keymap].items(), reverse=True):
        reverse[shifted] = (code, True)
        reverse[plain] = (code, False)
    events: list[Event] = []
    t = t0

    def ev(etype: int, code: int, value: int) -> None:
        events.append((int(t), int(round((t % 1) * 1e6)), etype, code, value))

    for ch in text:
        code, shifted = reverse[ch]
        if shifted:
            ev(k.EV_KEY, k.KEY_LEFTSHIFT, 1)
        ev(k.EV_MSC, 4, 0x70000 + code)
        ev(k.EV_KEY, code, 1)
        ev(k.EV_SYN, 0, 0)
        ev(k.EV_KEY, code, 0)
        if shifted:
            ev(k.EV_KEY, k.KEY_LEFTSHIFT, 0)
        ev(k.EV_SYN, 0, 0)
        t += step_s
    ev(k.EV_KEY, terminator, 1)
    ev(k.EV_KEY, terminator, 0)
    ev(k.EV_SYN, 0, 0)
    return events

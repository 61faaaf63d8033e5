"""Linux input event codes (linux/input-event-codes.h) and keymaps, so decoding needs no evdev package."""

from __future__ import annotations

EV_SYN, EV_KEY, EV_MSC = 0x00, 0x01, 0x04
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

KEY_ESC, KEY_TAB, KEY_ENTER, KEY_KPENTER = 1, 15, 28, 96
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_CAPSLOCK = 42, 54, 58
KEY_F1, KEY_F12 = 59, 88
BTN_0, BTN_LEFT, BTN_TOUCH = 0x100, 0x110, 0x14A

SHIFT_KEYS = frozenset({KEY_LEFTSHIFT, KEY_RIGHTSHIFT})


def _row(first_code: int, plain: str, shifted: str) -> dict[int, tuple[str, str]]:
    return {first_code + i: (p, s) for i, (p, s) in enumerate(zip(plain, shifted, strict=True))}


# US layout: (unshifted, shifted) per key code. What a scanner in "USB keyboard, US" mode types.
US: dict[int, tuple[str, str]] = {
    **_row(2, "1234567890-=", "!@#$%^&*()_+"),
    **_row(16, "qwertyuiop[]", "QWERTYUIOP{}"),
    **_row(30, "asdfghjkl;'`", 'ASDFGHJKL:"~'),
    **_row(43, "\\zxcvbnm,./", "|ZXCVBNM<>?"),
    57: (" ", " "),
    55: ("*", "*"), 74: ("-", "-"), 78: ("+", "+"), 83: (".", "."), 98: ("/", "/"),  # keypad
    **_row(71, "789", "789"), **_row(75, "456", "456"), **_row(79, "1230", "1230"),
}

# German layout (QWERTZ): scanners sold in Europe often ship configured for it.
DE: dict[int, tuple[str, str]] = {
    **US,
    **_row(2, "1234567890ß", '!"§$%&/()=?'),
    21: ("z", "Z"), 44: ("y", "Y"), 12: ("ß", "?"), 53: ("-", "_"), 51: (",", ";"), 52: (".", ":"),
}

KEYMAPS: dict[str, dict[int, tuple[str, str]]] = {"us": US, "de": DE}
TERMINATORS: dict[str, frozenset[int]] = {
    "enter": frozenset({KEY_ENTER, KEY_KPENTER}),
    "tab": frozenset({KEY_TAB}),
}

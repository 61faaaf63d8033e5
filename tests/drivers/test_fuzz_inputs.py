"""Fuzz: garbage serial bytes, random evdev events and byte dumps never crash a decoder."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.inputs import codes as k
from drivers.inputs.buttons import Buttons
from drivers.inputs.evdev_source import FakeEventDevice, parse_event_bytes
from drivers.scanner.base import MAX_BARCODE_LEN
from drivers.scanner.hid import KeyDecoder
from drivers.scanner.serial import LineDecoder

events = st.tuples(
    st.integers(-(2**40), 2**40), st.integers(-(2**31), 2**31),
    st.sampled_from([k.EV_SYN, k.EV_KEY, k.EV_MSC, 2, 3, 17, 0xFFFF]),
    st.one_of(st.integers(0, 0x2FF), st.sampled_from([k.KEY_ENTER, k.KEY_LEFTSHIFT, 2, 30])),
    st.integers(-(2**31), 2**31 - 1),
)


def _valid(code: str) -> bool:
    return 0 < len(code) <= MAX_BARCODE_LEN and code.isprintable() and code == code.strip()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=700), max_size=8))
def test_serial_garbage_never_crashes(chunks):
    decoder = LineDecoder("fuzz")
    for chunk in chunks:
        assert all(_valid(c) for c in decoder.feed(chunk))
    assert len(decoder._buf) <= MAX_BARCODE_LEN * 4  # memory stays bounded


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=200), st.sampled_from(["us", "de"]))
def test_random_evdev_events_never_crash(stream, keymap):
    decoder = KeyDecoder(keymap)
    buttons = Buttons(FakeEventDevice(), {k.KEY_F1: "call"})
    for event in stream:
        code = decoder.feed(event)
        assert code is None or _valid(code)
        buttons.feed(event)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=24 * 40))
def test_garbage_evdev_byte_dumps_never_crash(raw):
    decoder = KeyDecoder()
    for event in parse_event_bytes(raw):
        code = decoder.feed(event)
        assert code is None or _valid(code)


@given(st.integers(MAX_BARCODE_LEN + 1, MAX_BARCODE_LEN * 3))
@settings(max_examples=20, deadline=None)
def test_overlong_codes_are_dropped(n):
    decoder = LineDecoder("fuzz")
    assert decoder.feed(b"7" * n + b"\r\n") == []
    assert decoder.feed(b"42\n") == ["42"]


def test_malformed_event_tuples_are_ignored():
    assert KeyDecoder().feed(("x", None, 1, 2, 3)) is None  # type: ignore[arg-type]
    assert KeyDecoder().feed((1, 2, 3)) is None  # type: ignore[arg-type]

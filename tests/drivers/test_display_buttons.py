"""Customer display on a real pty; the fake's screen emulation; buttons; the cash drawer kick."""

from __future__ import annotations

import os
import select

import pytest

from drivers.cash_drawer import CashDrawer
from drivers.display.base import encode_line
from drivers.display.fake import FakeDisplay
from drivers.display.serial import SerialDisplay
from drivers.errors import PeripheralMissingError
from drivers.inputs import codes as k
from drivers.inputs.buttons import Buttons
from drivers.inputs.evdev_source import FakeEventDevice
from drivers.printer.fake import FakePrinter


def _read_exactly(fd: int, n: int) -> bytes:
    out = b""
    while len(out) < n:
        ready, _, _ = select.select([fd], [], [], 5)
        assert ready, f"display sent only {out!r}"
        out += os.read(fd, n - len(out))
    return out


def test_vfd_on_a_pty_gets_exact_commands(pty_pair):
    master, path = pty_pair
    with SerialDisplay(f"serial:{path}?baud=9600") as display:
        display.show("Total", "CNY 22.50")
        expected = (b"\x1b@\x0c" + b"\x1f$\x01\x01" + b"Total" + b" " * 15
                    + b"\x1f$\x01\x02" + b"CNY 22.50" + b" " * 11)
        assert _read_exactly(master, len(expected)) == expected


def test_display_lines_are_clipped_and_safe():
    assert encode_line("x" * 30) == b"x" * 20
    assert encode_line("¥9\x1b@") == b"?9 @" + b" " * 16  # no command smuggled in, layout kept
    assert encode_line("合计 9.00", "gb18030") == "合计 9.00".encode("gb18030") + b" " * 11
    fake = FakeDisplay(encoding="gb18030")
    with fake:
        fake.show("欢迎光临", "合计 22.50")
    assert fake.screen == ["欢迎光临" + " " * 12, "合计 22.50" + " " * 10]  # Hanzi take two cells
    fake.open()
    fake.unplug()
    with pytest.raises(PeripheralMissingError):
        fake.show("x")
    fake.close()
    with pytest.raises(PeripheralMissingError):
        fake.open()


def test_missing_display_port(tmp_path):
    with pytest.raises(PeripheralMissingError, match="not found"):
        SerialDisplay(f"serial:{tmp_path / 'ttyX'}").open()


def test_call_button_presses_are_debounced():
    dev = FakeEventDevice("/dev/input/by-id/joyedge-call-button")
    buttons = Buttons(dev, {k.KEY_F1: "call_staff"})
    buttons.open()
    dev.push([
        (10, 0, k.EV_KEY, k.KEY_F1, 1), (10, 50_000, k.EV_KEY, k.KEY_F1, 0),
        (10, 100_000, k.EV_KEY, k.KEY_F1, 1),  # contact bounce: the same press
        (12, 0, k.EV_KEY, k.KEY_F1, 1),  # a second press
        (12, 10, k.EV_KEY, 30, 1),  # a key we do not watch
    ])
    presses = buttons.read(0.5)
    assert [(p.name, p.timestamp) for p in presses] == [("call_staff", 10.0), ("call_staff", 12.0)]
    buttons.close()


def test_cash_drawer_kicks_through_the_printer():
    printer = FakePrinter()
    printer.open()
    drawer = CashDrawer(printer, pin=5)
    drawer.open()
    assert printer.jobs() == b"\x1bp\x01\x32\xfa"
    assert drawer.is_open() is False
    printer.drawer_open = True
    assert drawer.is_open() is True

"""Scanners: recorded evdev streams through the HID decoder, a real pty for serial, QR from frames."""

from __future__ import annotations

import os

import numpy as np
import pytest

from drivers.camera.fake import FakeCamera
from drivers.errors import PeripheralMissingError, ScannerError
from drivers.inputs import codes as k
from drivers.inputs.evdev_source import EVENT_STRUCT, FakeEventDevice, parse_event_bytes
from drivers.scanner import MAX_BARCODE_LEN, open_scanner
from drivers.scanner.camera import CameraScanner
from drivers.scanner.fake import FakeScanner
from drivers.scanner.hid import HidScanner, KeyDecoder, key_events


def _decode_all(decoder, events):
    return [c for e in events if (c := decoder.feed(e)) is not None]


def test_recorded_byte_stream_decodes_with_shift_and_terminator():
    # a recording as `cat /dev/input/eventN > scan.bin` would give: struct input_event records
    raw = b"".join(EVENT_STRUCT.pack(*e) for e in key_events("Ab-12") + key_events("6901234567892"))
    dev = FakeEventDevice("/dev/input/by-id/joyedge-scanner")
    dev.push_bytes(raw)
    with HidScanner(dev) as scanner:
        assert scanner.read(0.5) == ["Ab-12", "6901234567892"]
        assert scanner.read(0) == []


def test_keymaps_terminators_and_pauses():
    de = KeyDecoder("de")
    assert _decode_all(de, key_events("zy", "de")) == ["zy"]
    # the same key codes read with a US map give the QWERTY letters: the keymap is per device
    assert _decode_all(KeyDecoder("us"), key_events("zy", "de")) == ["yz"]
    tab = KeyDecoder("us", "tab")
    assert _decode_all(tab, key_events("X1", terminator=k.KEY_TAB)) == ["X1"]
    # keys stop for a second mid-code: the half code is dropped, the next full code still reads
    half = key_events("123")[:-3]
    later = key_events("456", t0=1002.0)
    assert _decode_all(KeyDecoder(), half + later) == ["456"]
    with pytest.raises(ScannerError, match="unknown keymap"):
        KeyDecoder("fr")


def test_unknown_keycodes_and_overlong_codes_are_ignored(caplog):
    d = KeyDecoder()
    stream = key_events("AB")
    stream.insert(2, (1000, 0, k.EV_KEY, 700, 1))  # a key no keymap knows
    assert _decode_all(d, stream) == ["AB"]
    assert _decode_all(d, key_events("9" * (MAX_BARCODE_LEN + 5))) == []
    assert "over-long" in caplog.text
    assert _decode_all(d, key_events("OK")) == ["OK"]  # the decoder recovered


def test_serial_scanner_on_a_pty(pty_pair):
    master, path = pty_pair
    with open_scanner("serial", path) as scanner:
        assert scanner.read(0.05) == []
        os.write(master, b"6901234567892\r\n\xff\xfe\xfd\r\nABC")
        codes = scanner.read(2.0)
        while not codes:
            codes = scanner.read(2.0)
        assert codes == ["6901234567892"]  # the garbage line was dropped
        os.write(master, "-DEF 悦云\r".encode("gb18030"))
        got: list[str] = []
        while not got:
            got = scanner.read(2.0)
        assert got == ["ABC-DEF 悦云"]


def test_serial_scanner_missing_port_is_missing(tmp_path):
    with pytest.raises(PeripheralMissingError, match="not found"):
        open_scanner("serial", str(tmp_path / "ttyNOPE")).open()


def test_camera_scanner_reads_qr_once_per_appearance():
    import qrcode

    qr = np.asarray(qrcode.make("JOY-COUPON-42", box_size=6, border=4).convert("RGB"), dtype=np.uint8)
    blank = np.full_like(qr, 255)
    cam = FakeCamera([qr, qr, blank, qr])
    with CameraScanner(cam) as scanner:
        seen = [scanner.read(0) for _ in range(4)]
    # frames come within milliseconds: the code stays "in view", so it is reported once
    assert seen[0] == ["JOY-COUPON-42"] and seen[1] == [] and seen[2] == []


def test_fake_scanner_validates_and_unplugs():
    s = FakeScanner()
    s.open()
    s.scan("  123  ")
    s.scan("bad\x07code")
    assert s.read(0.1) == ["123"]
    s.unplug()
    with pytest.raises(PeripheralMissingError):
        s.read(0)


def test_parse_event_bytes_drops_partial_tail():
    raw = EVENT_STRUCT.pack(1, 2, k.EV_KEY, 30, 1) + b"\x00" * 5
    assert list(parse_event_bytes(raw)) == [(1, 2, k.EV_KEY, 30, 1)]

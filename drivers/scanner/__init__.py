"""Barcode/QR scanners: HID keyboard wedge (evdev), serial (pyserial), camera (pyzbar), fake twin.

`open_scanner(kind, source, …)` builds (does not open) one from the profile's `[peripherals.scanner]`.
"""

from __future__ import annotations

from drivers.errors import ScannerError
from drivers.scanner.base import MAX_BARCODE_LEN, Scanner, accept

__all__ = ["MAX_BARCODE_LEN", "Scanner", "accept", "open_scanner"]


def open_scanner(kind: str, source: str, *, keymap: str = "us", terminator: str = "enter",
                 grab: bool = True, baudrate: int = 9600, camera=None) -> Scanner:
    """`kind` hid|evdev (source: /dev/input/…), serial (source: /dev/tty…), camera (a CameraSource)."""
    if kind in ("hid", "evdev"):
        from drivers.inputs.evdev_source import EvdevDevice
        from drivers.scanner.hid import HidScanner

        return HidScanner(EvdevDevice(source, grab=grab), keymap=keymap, terminator=terminator)
    if kind == "serial":
        from drivers.scanner.serial import SerialScanner

        return SerialScanner(source.removeprefix("serial:"), baudrate=baudrate)
    if kind == "camera":
        from drivers.scanner.camera import CameraScanner

        if camera is None:
            raise ScannerError("a camera scanner needs a camera")
        return CameraScanner(camera)
    raise ScannerError(f"unknown scanner kind {kind!r}: hid, serial or camera")

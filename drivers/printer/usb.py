"""A USB printer by vendor:product id, through python-escpos and pyusb (libusb)."""

from __future__ import annotations

from typing import Any

from drivers.errors import DriverUnavailableError
from drivers.printer._escpos import EscposTransport

READ_TIMEOUT_MS = 500


class UsbPrinter(EscposTransport):
    """`usb:04b8:0202` (Epson TM-T88). The udev rule in hardware/udev gives the joyedge user access."""

    backend = "usb"

    def __init__(self, vendor: int, product: int, **kw: Any) -> None:
        super().__init__(f"usb:{vendor:04x}:{product:04x}", **kw)
        self.vendor, self.product = vendor, product

    def _make(self) -> Any:
        try:
            import usb.core  # noqa: F401
        except ImportError as err:
            raise DriverUnavailableError("pyusb is not installed: `pip install joyedge[pi]` (or pyusb)") from err
        from escpos.printer import Usb

        return Usb(self.vendor, self.product, timeout=READ_TIMEOUT_MS)

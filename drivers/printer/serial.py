"""A serial printer (RS-232, USB-serial, Bluetooth SPP through /dev/rfcomm0) via pyserial."""

from __future__ import annotations

from typing import Any

from drivers.errors import DriverUnavailableError
from drivers.printer._escpos import EscposTransport

READ_TIMEOUT_S = 0.5


class SerialPrinter(EscposTransport):
    """`serial:/dev/ttyUSB0?baud=19200` (default 9600 baud, 8N1)."""

    backend = "serial"

    def __init__(self, port: str, baudrate: int = 9600, **kw: Any) -> None:
        super().__init__(f"serial:{port}", **kw)
        self.port, self.baudrate = port, baudrate

    def _make(self) -> Any:
        try:
            import serial  # noqa: F401  (python-escpos imports it itself; fail here with a hint)
        except ImportError as err:
            raise DriverUnavailableError("pyserial is not installed: `pip install pyserial`") from err
        from escpos.printer import Serial

        # dsrdtr off: many Bluetooth and USB-serial bridges never raise DSR, which stalls writes.
        return Serial(self.port, baudrate=self.baudrate, timeout=READ_TIMEOUT_S, dsrdtr=False)

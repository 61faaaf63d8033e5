"""A VFD pole display on a serial port (pyserial)."""

from __future__ import annotations

from urllib.parse import parse_qs

from drivers.display.base import CustomerDisplay
from drivers.errors import DisplayError, DriverUnavailableError, PeripheralMissingError

WRITE_TIMEOUT_S = 1.0


class SerialDisplay(CustomerDisplay):
    """`serial:/dev/joyedge-display?baud=9600` (9600 8N1 is what VFD poles ship with)."""

    backend = "serial"

    def __init__(self, uri: str, encoding: str = "ascii") -> None:
        path, _, query = uri.removeprefix("serial:").partition("?")
        if not path:
            raise DisplayError(f"display uri {uri!r} names no serial port")
        try:
            self.baudrate = int(parse_qs(query).get("baud", ["9600"])[0])
        except ValueError as err:
            raise DisplayError(f"display uri {uri!r}: baud must be a number") from err
        super().__init__(path, encoding)
        self._port = None

    def _open(self) -> None:
        try:
            import serial
        except ImportError as err:
            raise DriverUnavailableError("pyserial is not installed: `pip install pyserial`") from err
        try:
            self._port = serial.Serial(self.source, baudrate=self.baudrate, write_timeout=WRITE_TIMEOUT_S)
        except serial.SerialException as err:
            raise PeripheralMissingError(f"customer display {self.source} not found: {err}") from err

    def _raw(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)  # type: ignore[union-attr]
            self._port.flush()  # type: ignore[union-attr]
        except (serial.SerialException, OSError) as err:
            raise PeripheralMissingError(f"customer display {self.source} was unplugged: {err}") from err

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

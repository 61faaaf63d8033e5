"""Serial scanners (RS-232, USB-CDC, the built-in scanner of a handheld) through pyserial.

A code is the bytes up to CR or LF. Bytes are decoded as UTF-8, then GB18030 (Chinese scanners
send either); undecodable lines, control characters and lines longer than any code are dropped.
"""

from __future__ import annotations

import logging

from drivers.errors import DriverUnavailableError, PeripheralMissingError, ScannerError
from drivers.scanner.base import MAX_BARCODE_LEN, Scanner, accept

_LOG = logging.getLogger(__name__)

TERMINATOR_BYTES = b"\r\n"


class LineDecoder:
    """Bytes in, codes out. Memory stays bounded whatever arrives; never raises on bad input."""

    def __init__(self, source: str = "serial") -> None:
        self.source = source
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str]:
        """Feed bytes; returns the codes whose terminator arrived."""
        out: list[str] = []
        for byte in data:
            if byte in TERMINATOR_BYTES:
                line, overflow = bytes(self._buf), self._overflow
                self._buf.clear()
                self._overflow = False
                if overflow:
                    _LOG.warning("scanner %s: ignoring an over-long line (more than %d bytes)", self.source, MAX_BARCODE_LEN * 4)
                elif line:
                    code = self._decode(line)
                    if code is not None:
                        out.append(code)
            elif len(self._buf) >= MAX_BARCODE_LEN * 4:  # 4: the widest GB18030/UTF-8 character
                self._overflow = True
            else:
                self._buf.append(byte)
        return out

    def _decode(self, line: bytes) -> str | None:
        for encoding in ("utf-8", "gb18030"):
            try:
                return accept(line.decode(encoding), self.source)
            except UnicodeDecodeError:
                continue
        _LOG.warning("scanner %s: ignoring undecodable bytes %r", self.source, line[:40])
        return None


class SerialScanner(Scanner):
    """`serial:/dev/ttyS1` at 9600 8N1 by default."""

    backend = "serial"

    def __init__(self, port: str, baudrate: int = 9600) -> None:
        self.source = port
        self.baudrate = baudrate
        self.decoder = LineDecoder(port)
        self._port = None

    def open(self) -> None:
        try:
            import serial
        except ImportError as err:
            raise DriverUnavailableError("pyserial is not installed: `pip install pyserial`") from err
        try:
            self._port = serial.Serial(self.source, baudrate=self.baudrate, timeout=0)
        except serial.SerialException as err:
            raise PeripheralMissingError(f"scanner {self.source} not found: {err}") from err

    def read(self, timeout: float) -> list[str]:
        import serial

        if self._port is None:
            raise ScannerError(f"scanner {self.source} read before open()")
        try:
            self._port.timeout = timeout
            first = self._port.read(1)  # waits up to `timeout` for the first byte
            rest = self._port.read(self._port.in_waiting) if first else b""
        except (serial.SerialException, OSError) as err:
            raise PeripheralMissingError(f"scanner {self.source} was unplugged: {err}") from err
        return self.decoder.feed(first + rest)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            port.close()

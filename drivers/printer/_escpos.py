"""The one boundary to python-escpos: lazy import, install hint, and its errors translated to ours."""

from __future__ import annotations

from typing import Any

from drivers.errors import DriverUnavailableError, PeripheralMissingError, PrinterError
from drivers.printer.base import Printer

HINT = "python-escpos is not installed: `pip install python-escpos` (it comes with joyedge)"


class EscposTransport(Printer):
    """A python-escpos printer object used only as a byte pipe (`_raw`, `_read`)."""

    def _make(self) -> Any:  # pragma: no cover - each backend overrides
        raise NotImplementedError

    def _open(self) -> None:
        try:
            from escpos.exceptions import Error as EscposError
        except ImportError as err:
            raise DriverUnavailableError(HINT) from err
        self._dev = self._make()
        try:
            self._dev.open()
        except (EscposError, OSError, ValueError) as err:
            self._dev = None
            raise PeripheralMissingError(f"printer {self.uri} not found: {err}".strip()) from err

    def _raw(self, data: bytes) -> None:
        try:
            self._dev._raw(data)
        except (OSError, AssertionError) as err:
            raise PrinterError(f"printer {self.uri} lost the connection: {err}") from err
        except Exception as err:  # pyusb's USBError / pyserial's SerialException: both lazily imported
            raise PrinterError(f"printer {self.uri}: {err}") from err

    def _read(self) -> bytes:
        try:
            return bytes(self._dev._read() or b"")
        except Exception:  # no answer in time (socket timeout, pyusb/pyserial timeouts): no status
            return b""

    def _close(self) -> None:
        dev, self._dev = getattr(self, "_dev", None), None
        if dev is not None:
            try:
                dev.close()
            except Exception:  # closing a pulled device may fail; it is gone either way
                pass

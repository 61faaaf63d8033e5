"""The one boundary to python-escpos: lazy import, install hint, its errors and its logging translated to ours.

Logging: python-escpos' printer modules call the `logging` module's functions directly
(`logging.info("File printer enabled")` in escpos/printer/file.py, network.py, serial.py, usb.py, …), i.e.
the root logger: every open and close of a printer put an INFO line in the journal outside our format and
levels, and in a process that had configured no logging the first one ran `logging.basicConfig()`
(that is what `logging.info()` does when the root has no handler). We contain it here, where the library
is imported, rather than with a filter on the root handler: a handler filter only covers the handlers that
exist when it is installed (device/cli.py's basicConfig, the admin file handler, a test's…) and cannot stop
the implicit basicConfig. Each loaded `escpos.*` module's global `logging` name is pointed at
`_EscposLogging`, which sends the lines to the `drivers.printer.escpos` logger at DEBUG (our own errors,
translated below, say what went wrong). `getLogger`, levels and the rest pass through unchanged.
escpos/capabilities.py also calls `logging.basicConfig()` when it is imported: `_import_escpos` undoes the
root handler that adds (only in a process that had none; with handlers, basicConfig does nothing).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from drivers.errors import DriverUnavailableError, PeripheralMissingError, PrinterError
from drivers.printer.base import Printer

HINT = "python-escpos is not installed: `pip install python-escpos` (it comes with joyedge)"
ESCPOS_LOGGER = "drivers.printer.escpos"


class _EscposLogging:
    """Stands in for the `logging` module inside python-escpos' modules (see the module docstring)."""

    def __init__(self) -> None:
        self._log = logging.getLogger(ESCPOS_LOGGER)

    def __getattr__(self, name: str) -> Any:
        return getattr(logging, name)  # getLogger, DEBUG, Logger … as the real module has them

    def _debug(self, msg: object, *args: object, **kw: Any) -> None:
        kw.setdefault("stacklevel", 3)  # the record names escpos' line, not this one
        self._log.debug(msg, *args, **kw)

    debug = info = warning = warn = error = critical = fatal = _debug

    def exception(self, msg: object, *args: object, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._debug(msg, *args, **kw)

    def log(self, level: int, msg: object, *args: object, **kw: Any) -> None:
        self._debug(msg, *args, **kw)


_SHIM = _EscposLogging()


def _import_escpos() -> type[Exception]:
    """Import python-escpos (every printer module) without its import-time `logging.basicConfig()`;
    returns its exception root. DriverUnavailableError with the install hint when it is missing."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        import escpos.printer  # noqa: F401 - the transports' modules, loaded so their logging is contained
        from escpos.exceptions import Error as EscposError
    except ImportError as err:
        raise DriverUnavailableError(HINT) from err
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
    contain_escpos_logging()
    return EscposError


def contain_escpos_logging() -> None:
    """Point every loaded python-escpos module's `logging` at the shim (idempotent; cheap)."""
    for name, module in list(sys.modules.items()):
        if (name == "escpos" or name.startswith("escpos.")) and getattr(module, "logging", None) is logging:
            module.logging = _SHIM  # type: ignore[attr-defined]


class EscposTransport(Printer):
    """A python-escpos printer object used only as a byte pipe (`_raw`, `_read`)."""

    def _make(self) -> Any:  # pragma: no cover - each backend overrides
        raise NotImplementedError

    def _open(self) -> None:
        escpos_error = _import_escpos()
        self._dev = self._make()
        try:
            self._dev.open()
        except (escpos_error, OSError, ValueError) as err:
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

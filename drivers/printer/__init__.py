"""Receipt printers: ESC/POS protocol once (`base`, `commands`, `receipt`), one module per transport.

`open_printer(uri)` builds (does not connect) the printer a URI names:
`usb:04b8:0202`, `serial:/dev/ttyUSB0[?baud=19200]`, `tcp://HOST[:9100]`, `file:/path`, `fake:`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qs, urlsplit

from drivers.errors import PrinterError
from drivers.printer.base import Printer
from drivers.printer.commands import PrinterStatus
from drivers.printer.receipt import Receipt, ReceiptLine, render, sample_receipt

__all__ = ["Printer", "PrinterStatus", "Receipt", "ReceiptLine", "open_printer", "parse_printer_uri",
           "render", "sample_receipt"]

SCHEMES = ("usb", "serial", "tcp", "file", "fake")


def parse_printer_uri(uri: str) -> tuple[str, dict[str, object]]:
    """(backend, constructor arguments) for a printer URI; PrinterError names what is wrong."""
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in SCHEMES:
        raise PrinterError(f"printer uri {uri!r}: use usb:VID:PID, serial:/dev/tty…, tcp://HOST:9100, file:PATH or fake:")
    if scheme == "usb":
        vid, _, pid = rest.partition(":")
        try:
            return "usb", {"vendor": int(vid, 16), "product": int(pid, 16)}
        except ValueError as err:
            raise PrinterError(f"printer uri {uri!r}: usb needs hex ids, e.g. usb:04b8:0202") from err
    if scheme == "tcp":
        parts = urlsplit(uri)
        if not parts.hostname:
            raise PrinterError(f"printer uri {uri!r}: tcp needs a host, e.g. tcp://192.168.1.50:9100")
        try:
            port = parts.port or 9100
        except ValueError as err:
            raise PrinterError(f"printer uri {uri!r}: bad port") from err
        return "network", {"host": parts.hostname, "port": port}
    if scheme == "serial":
        path, _, query = rest.partition("?")
        if not path:
            raise PrinterError(f"printer uri {uri!r} names no serial port")
        try:
            baud = int(parse_qs(query).get("baud", ["9600"])[0])
        except ValueError as err:
            raise PrinterError(f"printer uri {uri!r}: baud must be a number") from err
        return "serial", {"port": path, "baudrate": baud}
    if scheme == "file":
        if not rest:
            raise PrinterError(f"printer uri {uri!r} names no file")
        return "file", {"path": rest}
    return "fake", {"uri": uri}


def open_printer(uri: str, paper_mm: Literal[58, 80] = 80) -> Printer:
    """Build the printer a URI names (connect with `open()` or `with`)."""
    backend, kw = parse_printer_uri(uri)
    if backend == "usb":
        from drivers.printer.usb import UsbPrinter as cls
    elif backend == "network":
        from drivers.printer.network import NetworkPrinter as cls  # type: ignore[assignment]
    elif backend == "serial":
        from drivers.printer.serial import SerialPrinter as cls  # type: ignore[assignment]
    elif backend == "file":
        from drivers.printer.file import FilePrinter as cls  # type: ignore[assignment]
    else:
        from drivers.printer.fake import FakePrinter as cls  # type: ignore[assignment]
    return cls(paper_mm=paper_mm, **kw)  # type: ignore[arg-type]

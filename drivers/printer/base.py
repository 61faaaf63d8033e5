"""The printer interface: transports implement `_open`, `_raw`, `_read`, `_close`; the rest is here once.

Like python-escpos, every transport only moves bytes. Status (paper-out, cover-open), receipts and
the drawer kick are built above it, so the fake twin exercises the same code as a real printer.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Literal

from drivers.errors import PeripheralMissingError, PrinterError, PrinterNotReadyError
from drivers.printer import commands as cmd
from drivers.printer.commands import PrinterStatus
from drivers.printer.receipt import Receipt, render

_LOG = logging.getLogger(__name__)


class Printer(ABC):
    """An ESC/POS receipt printer behind one transport."""

    backend: str = "printer"
    readable: bool = True  # False: the transport cannot answer status queries (a file)

    def __init__(self, uri: str, paper_mm: Literal[58, 80] = 80) -> None:
        self.uri = uri
        self.paper_mm = paper_mm
        self._is_open = False
        # The app prints while the health supervisor probes: opens nest (counted) and a status
        # query never lands inside a receipt, so one lock guards each whole exchange.
        self._lock = threading.RLock()
        self._users = 0

    # -- transport primitives ------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Connect; raise PeripheralMissingError when the device is not there."""

    @abstractmethod
    def _raw(self, data: bytes) -> None:
        """Send bytes; raise PrinterError when the link breaks."""

    def _read(self) -> bytes:
        """Bytes the printer sent back (b"" when none arrived in time)."""
        return b""

    @abstractmethod
    def _close(self) -> None:
        """Disconnect; safe to call twice."""

    # -- protocol ----------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the printer (PeripheralMissingError says what to check). Opens nest."""
        with self._lock:
            if not self._is_open:
                self._open()
                self._is_open = True
            self._users += 1

    def close(self) -> None:
        """Disconnect when the last user closes."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._is_open and self._users == 0:
                self._is_open = False
                self._close()

    def write(self, data: bytes) -> None:
        """Send raw ESC/POS bytes."""
        with self._lock:
            if not self._is_open:
                raise PrinterError(f"printer {self.uri} written before open()")
            self._raw(data)

    def status(self) -> PrinterStatus:
        """Ask DLE EOT 1, 2 and 4 and say what state the printer is in."""
        if not self.readable:
            return PrinterStatus("unknown", f"{self.backend} transport cannot report paper or cover state")
        answers: list[int | None] = []
        with self._lock:
            for n in (1, 2, 4):
                self.write(cmd.status_query(n))  # type: ignore[arg-type]
                reply = self._read()
                answers.append(reply[-1] if reply else None)
        return cmd.parse_status(*answers)

    def ensure_ready(self) -> PrinterStatus:
        """The status, raising PrinterNotReadyError when a job would be lost (paper out, cover open)."""
        st = self.status()
        if st.state in ("paper_out", "cover_open", "offline"):
            raise PrinterNotReadyError(st.state, f"printer {self.uri}: {st.detail}")
        if st.state == "paper_near_end":
            _LOG.warning("printer %s: %s", self.uri, st.detail)
        return st

    def print_receipt(self, receipt: Receipt) -> int:
        """Render and send a receipt after checking the printer can take it; returns bytes sent."""
        job = render(receipt, self.paper_mm)
        with self._lock:
            self.ensure_ready()
            self.write(job)
        return len(job)

    def kick_drawer(self, pin: Literal[2, 5] = 2) -> None:
        """Open the cash drawer wired to the printer's drawer port."""
        self.write(cmd.kick_drawer(pin))

    def __enter__(self) -> Printer:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


__all__ = ["Printer", "PrinterStatus", "PeripheralMissingError", "PrinterError", "PrinterNotReadyError"]

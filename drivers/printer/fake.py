"""The fake printer twin: records every byte and answers DLE EOT status queries from its state.

Paper, cover and cable are switches a test (or `joyedge selftest --fake-hardware`) flips, and the
answers go through the same status parser as a real printer's.
"""

from __future__ import annotations

import threading
from typing import Any

from drivers.errors import PeripheralMissingError, PrinterError
from drivers.printer import commands as cmd
from drivers.printer.base import Printer


class FakePrinter(Printer):
    """`fake:` — a printer in memory. `.data` holds everything written while it was connected."""

    backend = "fake"

    def __init__(self, uri: str = "fake:", **kw: Any) -> None:
        super().__init__(uri, **kw)
        self.data = bytearray()
        self.plugged = True
        self.paper = "ok"  # ok | near_end | out
        self.cover_open = False
        self.drawer_open = False
        self._replies: list[int] = []
        self._reply_lock = threading.Lock()

    def unplug(self) -> None:
        """Pull the cable: the next write fails and opening fails until `replug()`."""
        self.plugged = False

    def replug(self) -> None:
        """Put the cable back."""
        self.plugged = True

    def _open(self) -> None:
        if not self.plugged:
            raise PeripheralMissingError(f"printer {self.uri} not found (fake unplugged)")

    def _raw(self, data: bytes) -> None:
        if not self.plugged:
            raise PrinterError(f"printer {self.uri} lost the connection (fake unplugged)")
        with self._reply_lock:
            self.data += data
            # A real printer answers DLE EOT n at once, even mid-job; scan for them the same way.
            i = data.find(cmd.DLE + cmd.EOT)
            while i != -1 and i + 2 < len(data):
                self._replies.append(self._answer(data[i + 2]))
                i = data.find(cmd.DLE + cmd.EOT, i + 3)

    def _answer(self, n: int) -> int:
        byte = 0x12
        if n == 1 and self.drawer_open:
            byte |= 0x04
        if n == 2:
            byte |= 0x04 if self.cover_open else 0
            byte |= 0x20 if self.paper == "out" else 0
        if n == 4:
            byte |= {"ok": 0, "near_end": 0x0C, "out": 0x6C}[self.paper]
        return byte

    def _read(self) -> bytes:
        with self._reply_lock:
            return bytes([self._replies.pop(0)]) if self._replies else b""

    def _close(self) -> None:
        pass

    def jobs(self) -> bytes:
        """What was printed, without the status queries (those are not paper output)."""
        out, data, i = bytearray(), bytes(self.data), 0
        while i < len(data):
            if data[i : i + 2] == cmd.DLE + cmd.EOT:
                i += 3
                continue
            out.append(data[i])
            i += 1
        return bytes(out)

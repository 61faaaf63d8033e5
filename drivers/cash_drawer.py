"""The cash drawer: no device of its own, it opens on the receipt printer's kick pulse (ESC p)."""

from __future__ import annotations

from typing import Literal

from drivers.printer.base import Printer


class CashDrawer:
    """A drawer wired to `printer`'s RJ-11 drawer port (pin 2 by default, pin 5 for a second drawer)."""

    backend = "printer-kick"

    def __init__(self, printer: Printer, pin: Literal[2, 5] = 2) -> None:
        self.printer = printer
        self.pin = pin

    def open(self) -> None:
        """Send the kick pulse (PrinterError when the printer is gone)."""
        self.printer.kick_drawer(self.pin)

    def is_open(self) -> bool | None:
        """The drawer switch as the printer reports it (None when the transport cannot say)."""
        return self.printer.status().drawer_open

"""The fake display twin: records the bytes and emulates the 2×20 screen they would draw."""

from __future__ import annotations

from drivers.display.base import CLEAR, COLUMNS, INIT, ROWS, CustomerDisplay
from drivers.errors import PeripheralMissingError


class FakeDisplay(CustomerDisplay):
    """`.data` is every byte sent; `.screen` the two lines a customer would read (ASCII/GB18030)."""

    backend = "fake"

    def __init__(self, source: str = "fake-display", encoding: str = "ascii") -> None:
        super().__init__(source, encoding)
        self.data = bytearray()
        self.plugged = True

    def unplug(self) -> None:
        """Writes fail until `replug()`."""
        self.plugged = False

    def replug(self) -> None:
        """Back again."""
        self.plugged = True

    def _open(self) -> None:
        if not self.plugged:
            raise PeripheralMissingError(f"customer display {self.source} not found (fake unplugged)")

    def _raw(self, data: bytes) -> None:
        if not self.plugged:
            raise PeripheralMissingError(f"customer display {self.source} was unplugged")
        self.data += data

    def _close(self) -> None:
        pass

    @property
    def screen(self) -> list[str]:
        """Interpret the recorded commands as the display would."""
        rows = [bytearray(b" " * COLUMNS) for _ in range(ROWS)]
        col, row, data, i = 0, 0, bytes(self.data), 0
        while i < len(data):
            if data[i : i + 2] == INIT or data[i : i + 1] == CLEAR:
                rows = [bytearray(b" " * COLUMNS) for _ in range(ROWS)]
                col, row = 0, 0
                i += 2 if data[i : i + 2] == INIT else 1
            elif data[i : i + 2] == b"\x1f$":
                col, row = data[i + 2] - 1, data[i + 3] - 1
                i += 4
            else:
                if 0 <= row < ROWS and 0 <= col < COLUMNS:
                    rows[row][col] = data[i]
                col += 1
                i += 1
        return [bytes(r).decode(self.encoding, errors="replace") for r in rows]

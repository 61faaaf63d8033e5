"""The customer display: two lines of 20 columns, written as ESC/POS display commands.

Commands (Epson DM-D, and the Chinese VFDs that copy it): ESC @ initialise, CLR (0x0C) clear,
US $ x y move the cursor (1-based column, row). Text is encoded for the display's character set
(ASCII by default; GB18030 on Chinese displays, where a Hanzi takes two columns).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from drivers.errors import DisplayError

COLUMNS, ROWS = 20, 2
INIT = b"\x1b@"
CLEAR = b"\x0c"


def cursor(column: int, row: int) -> bytes:
    """US $ x y (1-based)."""
    return b"\x1f$" + bytes([column, row])


def _width(ch: str, encoding: str) -> int:
    return 1 if ord(ch) < 0x80 else (2 if encoding == "gb18030" else 1)


def encode_line(text: str, encoding: str = "ascii", columns: int = COLUMNS) -> bytes:
    """`text` clipped and padded to exactly `columns` display cells in `encoding`.

    Characters the display cannot show become "?" so the layout never shifts; control characters
    become spaces so customer-facing text can never send the display a command.
    """
    out, used = bytearray(), 0
    for ch in text:
        if not ch.isprintable():
            ch = " "
        w = _width(ch, encoding)
        if used + w > columns:
            break
        try:
            b = ch.encode(encoding)
        except UnicodeEncodeError:
            b, w = b"?", 1
        out += b
        used += w
    return bytes(out) + b" " * (columns - used)


class CustomerDisplay(ABC):
    """A 2×20 display: `show(line1, line2)`; transports implement `_open`, `_raw`, `_close`."""

    backend = "display"

    def __init__(self, source: str, encoding: str = "ascii") -> None:
        self.source = source
        self.encoding = encoding
        self._is_open = False

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _raw(self, data: bytes) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    def open(self) -> None:
        """Connect and initialise (PeripheralMissingError when absent)."""
        if not self._is_open:
            self._open()
            self._is_open = True
            self._raw(INIT + CLEAR)

    def show(self, line1: str, line2: str = "") -> None:
        """Replace both lines."""
        if not self._is_open:
            raise DisplayError(f"display {self.source} written before open()")
        self._raw(cursor(1, 1) + encode_line(line1, self.encoding) + cursor(1, 2) + encode_line(line2, self.encoding))

    def clear(self) -> None:
        """Blank the display."""
        if self._is_open:
            self._raw(CLEAR)

    def close(self) -> None:
        """Disconnect."""
        if self._is_open:
            self._is_open = False
            self._close()

    def __enter__(self) -> CustomerDisplay:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

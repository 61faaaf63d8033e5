"""A printer that is a file: a device node (`/dev/usb/lp0`) or a plain file to inspect a job."""

from __future__ import annotations

from typing import Any

from drivers.printer._escpos import EscposTransport


class FilePrinter(EscposTransport):
    """`file:/dev/usb/lp0` or `file:/tmp/receipt.bin`. Write-only: no status."""

    backend = "file"
    readable = False

    def __init__(self, path: str, **kw: Any) -> None:
        super().__init__(f"file:{path}", **kw)
        self.path = path

    def _make(self) -> Any:
        from escpos.printer import File

        return File(self.path)

"""The scanner interface and the rules every backend shares for what counts as a barcode.

A backend turns its device's bytes or key events into candidate strings; `accept()` decides.
Garbage (undecodable bytes, control characters, a code longer than any symbology allows) is
logged and dropped: a scanner must never take the checkout down.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from types import TracebackType

_LOG = logging.getLogger(__name__)

# Longest code we accept. QR can carry more, but no retail code (EAN, Code 128, GS1, a payment QR
# of WeChat/Alipay at ~100 chars) comes near; anything longer is a stuck key or line noise.
MAX_BARCODE_LEN = 512


def accept(candidate: str, source: str) -> str | None:
    """`candidate` stripped if it is a plausible barcode, else None (and a log line saying why)."""
    code = candidate.strip()
    if not code:
        return None
    if len(code) > MAX_BARCODE_LEN:
        _LOG.warning("scanner %s: ignoring a %d-character code (limit %d)", source, len(code), MAX_BARCODE_LEN)
        return None
    if not code.isprintable():
        _LOG.warning("scanner %s: ignoring a code with control characters: %r", source, code[:40])
        return None
    return code


class Scanner(ABC):
    """A barcode scanner. `read(timeout)` returns the codes scanned within `timeout` seconds."""

    backend: str = "scanner"
    source: str = ""

    @abstractmethod
    def open(self) -> None:
        """Acquire the device (PeripheralMissingError when it is not there)."""

    @abstractmethod
    def read(self, timeout: float) -> list[str]:
        """Codes completed within `timeout` (maybe none); PeripheralMissingError on unplug."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe twice."""

    def __enter__(self) -> Scanner:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

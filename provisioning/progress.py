"""A progress bar on stderr: redrawn in place on a terminal, a line per 10 % otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Redraw at most this often on a terminal, so a fast copy is not slowed by printing.
REDRAW_INTERVAL_S = 0.1


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


class Progress:
    """Reports `done` of `total` bytes for one labelled piece of work."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self.done = 0
        self.fraction: float | None = None

    def update(self, done: int, total: int | None = None, fraction: float | None = None) -> None:
        """Set the bytes done (and the total when known); `fraction` when only that is known (.xz)."""
        self.done = done
        self.fraction = fraction
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= REDRAW_INTERVAL_S:
                self._last_draw = now
                self.stream.write("\r" + self._line())
                self.stream.flush()
        elif self.fraction is not None or self.total:
            decile = min(10, int(self._frac() * 10))
            if decile > self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line() + "\n")
                self.stream.flush()

    def _frac(self) -> float:
        if self.fraction is not None:
            return min(1.0, self.fraction)
        return min(1.0, self.done / self.total) if self.total else 0.0

    def _line(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = f"{_mib(self.done / elapsed)} MiB/s"
        if self.fraction is not None or self.total:
            frac = self._frac()
            of = f"/{_mib(self.total)}" if self.fraction is None and self.total else ""
            return (f"{self.label:9} [{'#' * int(frac * 30):30}] {frac * 100:5.1f}% "
                    f"{_mib(self.done)}{of} MiB {rate}")
        return f"{self.label:9} {_mib(self.done)} MiB {rate}"

    def finish(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line() + "\n")
        elif self.total is None or self._last_decile < 10:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

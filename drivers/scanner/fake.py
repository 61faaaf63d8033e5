"""The fake scanner twin: codes a test "scans" come out of `read`, through the same validation."""

from __future__ import annotations

import queue

from drivers.errors import PeripheralMissingError
from drivers.scanner.base import Scanner, accept


class FakeScanner(Scanner):
    """`scan("6901234567892")` as a cashier would; `unplug()`/`replug()` for hot-plug tests."""

    backend = "fake"

    def __init__(self, source: str = "fake-scanner") -> None:
        self.source = source
        self.plugged = True
        self._q: queue.Queue[str] = queue.Queue()

    def scan(self, code: str) -> None:
        """Queue a scan."""
        self._q.put(code)

    def unplug(self) -> None:
        """Opens and reads fail until `replug()`."""
        self.plugged = False

    def replug(self) -> None:
        """Back again."""
        self.plugged = True

    def open(self) -> None:
        if not self.plugged:
            raise PeripheralMissingError(f"scanner {self.source} not found (fake unplugged)")

    def read(self, timeout: float) -> list[str]:
        if not self.plugged:
            raise PeripheralMissingError(f"scanner {self.source} was unplugged")
        out: list[str] = []
        try:
            raw = self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait()
            while True:
                code = accept(raw, self.source)
                if code is not None:
                    out.append(code)
                raw = self._q.get_nowait()
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        pass

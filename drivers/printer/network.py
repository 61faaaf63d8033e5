"""A network printer on a raw TCP port (JetDirect, 9100)."""

from __future__ import annotations

from typing import Any

from drivers.printer._escpos import EscposTransport

CONNECT_TIMEOUT_S = 3.0  # also the wait for a status answer; a LAN printer answers in milliseconds


class NetworkPrinter(EscposTransport):
    """`tcp://192.168.1.50:9100`."""

    backend = "network"

    def __init__(self, host: str, port: int = 9100, **kw: Any) -> None:
        super().__init__(f"tcp://{host}:{port}", **kw)
        self.host, self.port = host, port

    def _make(self) -> Any:
        from escpos.printer import Network

        return Network(self.host, port=self.port, timeout=CONNECT_TIMEOUT_S)

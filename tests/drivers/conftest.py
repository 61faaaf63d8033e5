"""Driver test fixtures: a loopback TCP "printer", pty pairs for serial devices."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest


class LoopbackPrinter:
    """A raw-TCP printer on 127.0.0.1:0 that records bytes and answers DLE EOT n like a real one."""

    def __init__(self, answers: dict[int, int] | None = None) -> None:
        self.answers = answers if answers is not None else {1: 0x12, 2: 0x12, 4: 0x12}
        self.received = bytearray()
        self.done = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="loopback-printer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        with conn:
            while chunk := conn.recv(65536):
                self.received += chunk
                i = chunk.find(b"\x10\x04")
                while i != -1 and i + 2 < len(chunk):
                    if chunk[i + 2] in self.answers:
                        conn.sendall(bytes([self.answers[chunk[i + 2]]]))
                    i = chunk.find(b"\x10\x04", i + 3)
        self.done.set()

    def close(self) -> None:
        self._sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def loopback_printer() -> Iterator[LoopbackPrinter]:
    """A fresh loopback printer per test."""
    server = LoopbackPrinter()
    yield server
    server.close()


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path): the test plays the device on the master side."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line discipline: bytes pass as a serial line passes them
    path = os.ttyname(slave)
    yield master, path
    os.close(master)
    os.close(slave)

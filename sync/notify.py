"""systemd's notify protocol (sd_notify): READY=1 once serving, WATCHDOG=1 from the loop that must not wedge.

Lives in sync (which imports nothing of ours but api) so that the sync daemon and the device app share it.
Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

_LOG = logging.getLogger(__name__)

WATCHDOG_PING_S = 5.0  # at most one WATCHDOG=1 per this long (WatchdogSec is 60/120 s in the units)


def sd_notify(message: str) -> bool:
    """Send one notify datagram (e.g. "READY=1"); False outside systemd or when it cannot be sent."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)  # a full notify queue must never stall the loop that pings
            s.connect(addr)
            s.sendall(message.encode())
        return True
    except OSError as err:
        _LOG.debug("sd_notify failed: %s", err)
        return False


class Watchdog:
    """READY=1 once, then WATCHDOG=1 from every turn of a main loop, rate-limited to WATCHDOG_PING_S."""

    def __init__(self) -> None:
        self._last = float("-inf")  # the first ping goes out at once

    def ready(self) -> None:
        """The process serves now (systemd's Type=notify start is complete)."""
        sd_notify("READY=1")

    def ping(self) -> None:
        """Call on every loop turn: a loop that stops turning stops pinging and systemd restarts it."""
        now = time.monotonic()
        if now - self._last >= WATCHDOG_PING_S:
            self._last = now
            sd_notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Say the stop is deliberate, so the watchdog does not count it as a hang."""
        sd_notify("STOPPING=1")

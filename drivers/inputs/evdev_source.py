"""Event sources: a real /dev/input device (python-evdev, imported lazily) and its fake twin.

Both hand out events as `(sec, usec, type, code, value)` tuples, the kernel's `struct input_event`,
so decoders never see the evdev package and tests feed recorded streams through the same path.
"""

from __future__ import annotations

import errno
import logging
import queue
import select
import struct
from collections.abc import Iterable, Iterator
from typing import Protocol

from drivers.errors import DriverUnavailableError, InputError, PeripheralMissingError

_LOG = logging.getLogger(__name__)

Event = tuple[int, int, int, int, int]
# struct input_event on 64-bit Linux: struct timeval (two longs), __u16 type, __u16 code, __s32 value
EVENT_STRUCT = struct.Struct("llHHi")


class EventSource(Protocol):
    """What scanners and buttons read from."""

    path: str

    def open(self) -> None: ...
    def read_events(self, timeout: float) -> list[Event]: ...
    def close(self) -> None: ...


def parse_event_bytes(raw: bytes) -> Iterator[Event]:
    """Events from a recorded byte dump of a /dev/input/event* node; a trailing partial is dropped."""
    whole = len(raw) - len(raw) % EVENT_STRUCT.size
    if whole != len(raw):
        _LOG.warning("input: dropping %d trailing bytes of a partial event", len(raw) - whole)
    for off in range(0, whole, EVENT_STRUCT.size):
        yield EVENT_STRUCT.unpack_from(raw, off)


class EvdevDevice:
    """A /dev/input/event* node, optionally grabbed exclusively (so scans do not type into the UI)."""

    def __init__(self, path: str, *, grab: bool = True) -> None:
        self.path = path
        self.grab = grab
        self._dev = None

    def open(self) -> None:
        """Open (and grab) the device; PeripheralMissingError when the node is not there."""
        try:
            import evdev
        except ImportError as err:
            raise DriverUnavailableError("evdev is not installed: `pip install joyedge[pi]` (Linux only)") from err
        try:
            dev = evdev.InputDevice(self.path)
        except FileNotFoundError as err:
            raise PeripheralMissingError(f"input device {self.path} not found: is it plugged in? (ls /dev/input/by-id)") from err
        except PermissionError as err:
            raise InputError(f"input device {self.path}: permission denied (udev rule, `input` group)") from err
        except OSError as err:
            raise PeripheralMissingError(f"input device {self.path}: {err}") from err
        if self.grab:
            try:
                dev.grab()
            except OSError as err:
                dev.close()
                raise InputError(f"input device {self.path} is grabbed by another process: {err}") from err
        self._dev = dev

    def read_events(self, timeout: float) -> list[Event]:
        """Events that arrive within `timeout` seconds (maybe none)."""
        if self._dev is None:
            raise InputError(f"input device {self.path} read before open()")
        try:
            ready, _, _ = select.select([self._dev.fd], [], [], timeout)
            if not ready:
                return []
            return [(e.sec, e.usec, e.type, e.code, e.value) for e in self._dev.read()]
        except BlockingIOError:
            return []
        except OSError as err:
            if err.errno in (errno.ENODEV, errno.EBADF, errno.EIO):
                raise PeripheralMissingError(f"input device {self.path} was unplugged") from err
            raise InputError(f"input device {self.path}: {err}") from err

    def close(self) -> None:
        """Release the grab and the node."""
        dev, self._dev = self._dev, None
        if dev is not None:
            try:
                if self.grab:
                    dev.ungrab()
            except OSError:
                pass
            dev.close()


class FakeEventDevice:
    """The twin: events pushed by a test (or parsed from a recorded dump) come out of `read_events`."""

    def __init__(self, path: str = "fake-input", events: Iterable[Event] = ()) -> None:
        self.path = path
        self.plugged = True
        self.opened = False
        self._q: queue.Queue[Event] = queue.Queue()
        self.push(events)

    def push(self, events: Iterable[Event]) -> None:
        """Queue events as if the device had sent them."""
        for e in events:
            self._q.put(e)

    def push_bytes(self, raw: bytes) -> None:
        """Queue a recorded byte dump of a /dev/input node."""
        self.push(parse_event_bytes(raw))

    def unplug(self) -> None:
        """Reads and opens fail as with a pulled USB device."""
        self.plugged = False

    def replug(self) -> None:
        """The device is back."""
        self.plugged = True

    def open(self) -> None:
        """Fails while unplugged."""
        if not self.plugged:
            raise PeripheralMissingError(f"input device {self.path} not found (fake unplugged)")
        self.opened = True

    def read_events(self, timeout: float) -> list[Event]:
        """Everything queued, or what arrives within `timeout`."""
        if not self.plugged:
            raise PeripheralMissingError(f"input device {self.path} was unplugged")
        out: list[Event] = []
        try:
            out.append(self._q.get(timeout=timeout) if timeout > 0 else self._q.get_nowait())
            while True:
                out.append(self._q.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        """Nothing to release."""
        self.opened = False

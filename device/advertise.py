"""Advertise this device on its LAN as `<id>._joyedge._tcp.local.` (zeroconf; api/discovery.py).

Started by the device admin API (which owns the advertised port) once that exists; usable on its
own now. `interfaces` limits the sockets to given addresses (tests use ["127.0.0.1"], so nothing
leaves the machine); the default is every interface, as a device on a mall LAN needs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TypeVar

from api.discovery import SERVICE_TYPE, STATE_READY, TXT_ID, TXT_PROFILE, TXT_SITE, TXT_STATE, TXT_VERSION
from device.errors import DeviceError

T = TypeVar("T")


def _outside_asyncio(fn: Callable[[], T]) -> T:
    """Run `fn` on a short-lived thread that has no asyncio loop.

    python-zeroconf's blocking API attaches to the *calling thread's* running event loop when
    there is one (and then waits on it, blocking it: EventLoopBlocked). The caller may be a thread
    with a loop (an asyncio admin API; Playwright's sync API in tests), so we never call it there.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller's thread below
            box["error"] = err

    t = threading.Thread(target=run, name="joyedge-advertise", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class Advertiser:
    """Registers one `_joyedge._tcp` service with TXT id/profile/version/site/state (+ `extra_txt`);
    `update_txt()` republishes changed extra keys; `close()` withdraws it."""

    def __init__(self, *, device_id: str, profile: str, version: str, site: str, port: int,
                 addresses: list[str] | None = None, interfaces: list[str] | None = None,
                 hostname: str | None = None, state: str = STATE_READY,
                 extra_txt: Mapping[str, str] | None = None) -> None:
        self.device_id = device_id
        self.profile = profile
        self.version = version
        self.site = site
        self.port = port
        self.state = state
        self.extra_txt = dict(extra_txt or {})
        self.addresses = addresses
        self.interfaces = interfaces
        self.hostname = hostname or device_id
        self._zc = None
        self._info = None

    @property
    def name(self) -> str:
        """The DNS-SD instance name."""
        return f"{self.device_id}.{SERVICE_TYPE}"

    def txt(self) -> dict[str, str]:
        """The TXT keys as advertised; DeviceError when one `key=value` string exceeds 255 bytes."""
        props = {TXT_ID: self.device_id, TXT_PROFILE: self.profile, TXT_VERSION: self.version,
                 TXT_SITE: self.site, TXT_STATE: self.state, **self.extra_txt}
        for key, value in props.items():
            if len(f"{key}={value}".encode()) > 255:  # one length byte per string (RFC 6763 §6.1)
                raise DeviceError(f"TXT {key!r} is {len(value.encode())} bytes: cut it to fit 255 with the key")
        return props

    def _service_info(self, packed: list[bytes]):  # -> zeroconf.ServiceInfo (imported lazily)
        from zeroconf import ServiceInfo

        return ServiceInfo(SERVICE_TYPE, self.name, port=self.port, server=f"{self.hostname}.local.",
                           properties=self.txt(), addresses=packed)

    def update_txt(self, extra_txt: Mapping[str, str]) -> None:
        """Replace the extra TXT keys and, when registered and changed, announce the new record."""
        if dict(extra_txt) == self.extra_txt:
            return
        old, self.extra_txt = self.extra_txt, dict(extra_txt)
        try:
            self.txt()
        except DeviceError:
            self.extra_txt = old
            raise
        zc, info = self._zc, self._info
        if zc is None or info is None:
            return
        new = self._service_info(list(info.addresses))
        _outside_asyncio(lambda: zc.update_service(new))
        self._info = new

    def start(self) -> Advertiser:
        """Open the mDNS sockets and register (probing for a name conflict first, as RFC 6762 §8 asks)."""
        return _outside_asyncio(self._start)

    def _start(self) -> Advertiser:
        try:
            from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException, Zeroconf
        except ImportError as err:
            raise DeviceError("advertising needs python-zeroconf: pip install zeroconf") from err
        addrs = self.addresses or self.interfaces or []
        try:
            packed = [socket.inet_aton(a) for a in addrs]
        except OSError as err:
            raise DeviceError(f"advertise addresses {addrs}: IPv4 addresses expected") from err
        self.txt()  # a value too long fails here, before any socket is opened
        try:
            zc = Zeroconf(interfaces=self.interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
        except OSError as err:
            raise DeviceError(f"cannot open an mDNS socket: {err.strerror}") from err
        try:
            info = self._service_info(packed or [socket.inet_aton(ip) for ip in _local_ipv4()])
            zc.register_service(info)
        except NonUniqueNameException as err:
            zc.close()
            raise DeviceError(f"another device already advertises {self.name}: device ids must be unique") from err
        except BaseException:
            zc.close()
            raise
        self._zc, self._info = zc, info
        return self

    def close(self) -> None:
        """Withdraw the service (a goodbye packet) and close the sockets. Idempotent."""
        zc, info, self._zc, self._info = self._zc, self._info, None, None
        if zc is None:
            return

        def withdraw() -> None:
            try:
                if info is not None:
                    zc.unregister_service(info)
            finally:
                zc.close()

        _outside_asyncio(withdraw)

    def __enter__(self) -> Advertiser:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _local_ipv4() -> list[str]:
    """The machine's non-loopback IPv4 addresses (ifaddr comes with zeroconf)."""
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(ip.ip)
    return out or ["127.0.0.1"]

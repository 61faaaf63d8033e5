"""`joyprov discover`: browse the LAN for `_joyedge._tcp.local.` devices (python-zeroconf).

A device whose first boot failed advertises from its not-provisioned notice (device/notice_advertise.py):
`state` not-provisioned, the `reason`, and the notice page's port, shown here as `notice_url`. A device
without `state` (an older build's admin API) is ready.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import asdict, dataclass

from api.discovery import (
    SERVICE_TYPE,
    STATE_READY,
    TXT_ID,
    TXT_NOTICE,
    TXT_PROFILE,
    TXT_REASON,
    TXT_SITE,
    TXT_STATE,
    TXT_VERSION,
)
from provisioning.errors import BadInput

# How long one service's SRV/TXT/A lookup may take once its name was seen.
RESOLVE_TIMEOUT_MS = 3000


@dataclass
class Device:
    """One advertised device, as a row of `joyprov discover`."""

    id: str
    profile: str
    version: str
    site: str
    host: str
    addresses: list[str]
    port: int
    name: str
    state: str = STATE_READY  # ready | not-provisioned (api/discovery.py)
    reason: str = ""  # why it is not provisioned, as its screen says
    notice_url: str = ""  # http://<address>:<port>/ of its notice page (JSON at api/provisioning)


def _notice_url(props: dict, addresses: list[str], host: str) -> str:
    port = _txt(props, TXT_NOTICE)
    if not port.isdigit():
        return ""
    return f"http://{addresses[0] if addresses else host}:{int(port)}/"


def _txt(props: dict, key: str) -> str:
    value = props.get(key.encode())
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def discover(timeout: float, *, count: int | None = None, interfaces: list[str] | None = None,
             site: str | None = None) -> list[Device]:
    """Devices (of `site`, when given) seen within `timeout` seconds; returns early once `count` are."""
    try:
        from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf
    except ImportError as err:
        raise BadInput("discovery needs python-zeroconf: pip install zeroconf") from err
    names: list[str] = []
    seen = threading.Condition()

    def on_change(zeroconf, service_type, name, state_change) -> None:
        if state_change is ServiceStateChange.Added:
            with seen:
                if name not in names:
                    names.append(name)
                seen.notify_all()

    try:
        zc = Zeroconf(interfaces=interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
    except OSError as err:
        raise BadInput(f"cannot open an mDNS socket ({err.strerror}): is another program holding port 5353 "
                       "exclusively, or is there no network interface?") from err
    found: dict[str, Device] = {}

    def wanted() -> list[Device]:
        return [d for d in found.values() if d.id and (site is None or d.site == site)]

    try:
        browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
        deadline = time.monotonic() + timeout
        try:
            while True:
                with seen:
                    pending = [n for n in names if n not in found]
                    if not pending:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or (count is not None and len(wanted()) >= count):
                            break
                        seen.wait(remaining)
                        continue
                for name in pending:
                    info = zc.get_service_info(SERVICE_TYPE, name, timeout=RESOLVE_TIMEOUT_MS)
                    if info is None:
                        found[name] = Device("", "", "", "", "", [], 0, name)  # seen, not resolved
                        continue
                    props = info.properties or {}
                    host = (info.server or "").rstrip(".")
                    addresses = [socket.inet_ntoa(a) for a in info.addresses if len(a) == 4]
                    state = _txt(props, TXT_STATE) or STATE_READY
                    found[name] = Device(
                        id=_txt(props, TXT_ID) or name.removesuffix("." + SERVICE_TYPE),
                        profile=_txt(props, TXT_PROFILE), version=_txt(props, TXT_VERSION),
                        site=_txt(props, TXT_SITE), host=host, addresses=addresses,
                        port=info.port or 0, name=name, state=state,
                        reason=_txt(props, TXT_REASON) if state != STATE_READY else "",
                        notice_url=_notice_url(props, addresses, host) if state != STATE_READY else "")
                if count is not None and len(wanted()) >= count:
                    break
        finally:
            browser.cancel()
    finally:
        zc.close()
    return sorted(wanted(), key=lambda d: (d.site, d.id))


def as_dicts(devices: list[Device]) -> list[dict]:
    """JSON-ready rows."""
    return [asdict(d) for d in devices]

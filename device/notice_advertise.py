"""Advertise a device that is not provisioned, so `joyprov discover` finds it and says why.

The not-provisioned notice (device/provisioning_status.py `NoticeServer`) runs where the admin API cannot:
without an enrollment certificate there is no mTLS server and so, before this, nothing on the LAN. The
notice registers the same `<id>._joyedge._tcp.local.` service (device/advertise.py) with TXT
`state=not-provisioned`, `reason` (cut to `TXT_REASON_MAX_BYTES`) and `notice` (its HTTP port), and
re-reads the status every `POLL_S`: a retry by `joyedge firstboot` changes the reason and the TXT record
follows; a device that became provisioned withdraws it, so the admin API can take the name.

The id is the one firstboot uses (`device.firstboot.device_id_for`: the first-boot file's hostname,
else profile + machine id) when the file on the boot partition can be read, else this host's name.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from api.discovery import STATE_NOT_PROVISIONED, TXT_NOTICE, TXT_REASON, TXT_REASON_MAX_BYTES
from device.errors import DeviceError

log = logging.getLogger(__name__)

# How often the status file and the LAN addresses are re-read (tests shrink it).
POLL_S = 3.0
ELLIPSIS = "…"


def cut_utf8(text: str, max_bytes: int = TXT_REASON_MAX_BYTES) -> str:
    """`text` if it fits in `max_bytes` of UTF-8, else its longest prefix that fits with "…" appended,
    cut between characters (never inside one: a half character would not decode)."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    return raw[:room].decode("utf-8", "ignore") + ELLIPSIS


@dataclass(frozen=True)
class NoticeIdentity:
    """What the notice advertises as the device: its id and, when known, its profile."""

    device_id: str
    profile: str = ""


def notice_identity(boot_dirs: Iterable[Path] | None = None, system_root: Path = Path("/"),
                    data_dir: Path | None = None) -> NoticeIdentity:
    """The id and profile firstboot would use: the id it was told (`--device-id`, kept in its status file
    in ``data_dir``), else the one it derives from the first-boot file on the boot partition (only the
    hostname and profile are read; the claim token stays where it is), else this host's name."""
    from api.firstboot import DONE_FILENAME, FILENAME, parse
    from device.firstboot import BOOT_DIRS, device_id_for
    from device.provisioning_status import read_status

    status = read_status(Path(data_dir)) if data_dir is not None else None
    forced = status.device_id if status is not None else ""
    for boot in boot_dirs if boot_dirs is not None else BOOT_DIRS:
        for name in (FILENAME, DONE_FILENAME):
            try:
                cfg = parse((Path(boot) / name).read_text(encoding="utf-8"))
                return NoticeIdentity(forced or device_id_for(cfg, system_root, None), cfg.profile)
            except (OSError, UnicodeDecodeError, ValueError, DeviceError):
                continue  # absent, unreadable or invalid (the failure being reported, maybe): next
    return NoticeIdentity(forced or socket.gethostname().split(".", 1)[0] or "joyedge")


class NoticeAdvertiser:
    """Keeps the not-provisioned advertisement in step with the status file (see the module doc).

    Advertising never stops the notice itself: a failure (no mDNS socket, the name taken) is logged once
    and tried again at the next poll, while the screens keep showing the reason.
    """

    def __init__(self, data_dir: Path, config_path: Path, *, port: int, identity: NoticeIdentity,
                 version: str, interfaces: list[str] | None = None) -> None:
        self.data_dir, self.config_path = Path(data_dir), Path(config_path)
        self.port, self.identity, self.version, self.interfaces = port, identity, version, interfaces
        self._adv = None  # device.advertise.Advertiser while registered
        self._addresses: list[str] = []
        self._lock = threading.Lock()  # one of poll/stop touches the advertiser at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""
        self.advertised: dict[str, str] = {}  # the TXT record last published ({} when withdrawn)

    def start(self) -> NoticeAdvertiser:
        """Advertise now (so a `discover` right after start sees it), then follow the status on a thread."""
        self.poll()
        self._thread = threading.Thread(target=self._run, name="notice-advertise", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self) -> None:
        """Re-read the status: advertise, update the TXT record, or withdraw when provisioned."""
        from device.provisioning_status import provisioning

        with self._lock:
            if self._stop.is_set():
                return
            state = provisioning(self.data_dir, self.config_path)
            if state["provisioned"]:
                if self._adv is not None:
                    log.info("notice: the device is provisioned; advertisement withdrawn")
                self._withdraw()
                return
            extra = {TXT_REASON: cut_utf8(state["reason"]), TXT_NOTICE: str(self.port)}
            try:
                self._publish(extra)
                self._last_error = ""
            except (DeviceError, OSError) as err:
                if str(err) != self._last_error:  # once per distinct failure, not every poll
                    log.error("notice: cannot advertise on the LAN (the screens still show the reason): %s", err)
                    self._last_error = str(err)
                self._withdraw()

    def _publish(self, extra: dict[str, str]) -> None:
        from device.advertise import Advertiser, _local_ipv4

        # A device whose network came up after the notice started must be re-advertised on it.
        addresses = [] if self.interfaces else sorted(_local_ipv4())
        if self._adv is not None and addresses != self._addresses:
            log.info("notice: LAN addresses now %s; advertising again", addresses)
            self._withdraw()
        if self._adv is None:
            adv = Advertiser(device_id=self.identity.device_id, profile=self.identity.profile,
                             version=self.version, site="", port=self.port, interfaces=self.interfaces,
                             state=STATE_NOT_PROVISIONED, extra_txt=extra)
            adv.start()
            self._adv, self._addresses = adv, addresses
            log.info("notice: advertised as %s (%s)", adv.name, extra[TXT_REASON])
        else:
            self._adv.update_txt(extra)
        self.advertised = self._adv.txt()

    def _withdraw(self) -> None:
        adv, self._adv, self.advertised = self._adv, None, {}
        if adv is not None:
            adv.close()

    def stop(self) -> None:
        """Stop polling and withdraw the advertisement (a goodbye packet). Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._withdraw()

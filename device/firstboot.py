"""`joyedge firstboot`: apply the installer's first-boot config (api/firstboot.py) once, then erase secrets.

Steps, each safe to repeat after a crash or a failed enrollment (the next boot runs it again):

1. read `joyedge-firstboot.toml` from the mounted boot partition;
2. hostname and WiFi into the system (NetworkManager keyfile, 0600); the WiFi passphrase is then
   erased from the boot partition at once: it is no longer needed there;
3. enroll with the cloud (`sync.identity.enroll`, the function `joyedge enroll` uses), which
   writes the device key, certificate and CA into the identity directory;
4. write the device config (`/etc/joyedge/device.toml`) with the ids the certificate carries and
   the cloud's mTLS address;
5. erase the claim token and rename the file to `joyedge-firstboot.done`, so it never runs again.

Failures are of two kinds (`FirstbootError.retryable`). The network (the cloud unreachable, a deadline)
is retried with backoff for `RETRY_FOR_S`, then given up until the next boot; a refusal (bad, used or
expired claim token), an invalid or unreadable file, or no CA is not retried: someone must change
something. Either way `<data_dir>/firstboot-status.json` says what happened (device/provisioning_status.py),
one ERROR line goes to the journal, the command exits 2, and the units start the not-provisioned notice
instead of the app (hardware/systemd). The claim token stays on the boot partition for the next attempt. Erasing overwrites the file in place with a same-length copy
without the secret and then truncates it: FAT does not move a file's clusters on rewrite, so
the old bytes are overwritten, not merely unlinked. (On flash media wear levelling may keep an
old copy in a spare block; the claim token is single-use and dead after enrollment.)
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.firstboot import DONE_FILENAME, FILENAME, FirstbootConfig, FirstbootFormatError, parse, render
from device.errors import DeviceError

log = logging.getLogger(__name__)

BOOT_DIRS = (Path("/boot/firmware"), Path("/boot"))
DEFAULT_CONFIG_OUT = Path("/etc/joyedge/device.toml")
DEFAULT_DATA_DIR = Path("/var/lib/joyedge")
WIFI_CONNECTION = "joyedge-wifi"
# Network failures are retried this long (within the unit's TimeoutStartSec=300), then left to the next boot.
RETRY_FOR_S = 240.0
BACKOFF_INITIAL_S = 5.0
BACKOFF_MAX_S = 60.0
# gRPC codes of an enrollment that may succeed later without anyone changing anything.
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


class FirstbootError(DeviceError):
    """First boot failed; `retryable` when a later attempt may succeed as is (the network)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class FirstbootResult:
    """What firstboot did, for the CLI's report."""

    device_id: str = ""
    site_id: str = ""
    store_id: str = ""
    config_path: str = ""
    enrolled: bool = False
    sync_target: str = ""
    erased: list[str] = field(default_factory=list)
    wrote: list[str] = field(default_factory=list)


def find_boot_dir(candidates: tuple[Path, ...] = BOOT_DIRS) -> Path:
    """The mounted boot partition that holds the first-boot file (Raspberry Pi OS: /boot/firmware)."""
    for d in candidates:
        if (d / FILENAME).is_file() or (d / DONE_FILENAME).is_file():
            return d
    raise DeviceError(f"no {FILENAME} in {' or '.join(map(str, candidates))}: pass --boot-dir "
                      "(the mounted boot partition), or write one with `joyprov configure`")


def _write_file(path: Path, data: str, mode: int) -> None:
    """Atomic (tmp + fsync + rename), created with `mode` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def erase_in_place(path: Path, new_text: str) -> None:
    """Overwrite `path` with `new_text` padded to the old length by a comment, fsync, truncate, fsync."""
    new = new_text.encode("utf-8")
    old_size = path.stat().st_size
    pad = old_size - len(new)
    data = new + (b"#" * (pad - 1) + b"\n" if pad > 0 else b"")
    with open(path, "r+b") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        f.truncate(len(new))
        f.flush()
        os.fsync(f.fileno())


def _keyfile_value(text: str) -> str:
    # GKeyFile escapes; the SSID has no control characters (validated), so these suffice.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _nm_keyfile(ssid: str, psk: str | None) -> str:
    lines = ["[connection]", f"id={WIFI_CONNECTION}", "type=wifi", "autoconnect=true", "",
             "[wifi]", "mode=infrastructure", f"ssid={_keyfile_value(ssid)}", ""]
    if psk is not None:
        lines += ["[wifi-security]", "key-mgmt=wpa-psk", f"psk={_keyfile_value(psk)}", ""]
    lines += ["[ipv4]", "method=auto", "", "[ipv6]", "method=auto", ""]
    return "\n".join(lines)


def _apply_system(cfg: FirstbootConfig, system_root: Path, result: FirstbootResult) -> None:
    if cfg.hostname:
        _write_file(system_root / "etc" / "hostname", cfg.hostname + "\n", 0o644)
        result.wrote.append(str(system_root / "etc" / "hostname"))
    if cfg.wifi_ssid is None:
        return
    keyfile = system_root / "etc" / "NetworkManager" / "system-connections" / f"{WIFI_CONNECTION}.nmconnection"
    if cfg.wifi_psk is None and keyfile.exists():
        return  # an earlier run wrote it with the passphrase, then erased the passphrase here
    _write_file(keyfile, _nm_keyfile(cfg.wifi_ssid, cfg.wifi_psk), 0o600)  # NM ignores keyfiles not 0600
    result.wrote.append(str(keyfile))
    if system_root == Path("/"):
        for cmd in (["nmcli", "connection", "reload"],
                    *([["hostnamectl", "set-hostname", cfg.hostname]] if cfg.hostname else [])):
            if shutil.which(cmd[0]):
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
                if done.returncode:
                    log.warning("firstboot: %s failed: %s", " ".join(cmd), done.stderr.strip())


def device_id_for(cfg: FirstbootConfig, system_root: Path, override: str | None) -> str:
    """--device-id, else the hostname, else profile + the first 12 hex digits of /etc/machine-id."""
    if override:
        return override
    if cfg.hostname:
        return cfg.hostname
    try:
        machine_id = (system_root / "etc" / "machine-id").read_text(encoding="ascii").strip()
    except OSError as err:
        raise DeviceError("no hostname in the first-boot config and no /etc/machine-id: pass --device-id") from err
    return f"{cfg.profile}-{machine_id[:12]}"


def _device_toml(cfg: FirstbootConfig, device_id: str, site_id: str, store_id: str, data_dir: Path,
                 sync_target: str) -> str:
    def q(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "\n".join([
        "# Written by `joyedge firstboot` from the installer's first-boot config and the enrollment.",
        f"profile = {q(cfg.profile)}", "", "[device]", f"id = {q(device_id)}", f"site_id = {q(site_id)}",
        f"store_id = {q(store_id)}", f"data_dir = {q(str(data_dir))}", "", "[sync]", f"cloud = {q(sync_target)}",
        "insecure = false", ""])


def _enroll(cloud: str, claim_token: str, cfg, ca_pem: bytes, name: str):
    """Enroll exactly as `joyedge enroll` does (sync.identity.enroll); errors become DeviceError."""
    from sync.errors import SyncError
    from sync.identity import enroll

    try:
        return enroll(cfg.identity_dir, cloud, claim_token, ca_pem=ca_pem, device_id=cfg.device.id, name=name)
    except SyncError as err:
        code = _grpc_code(err)
        if code in RETRYABLE_CODES:
            raise FirstbootError(f"网络不可用，无法连接云端 {cloud} (enrollment with {cloud} failed: {err})",
                                 retryable=True) from err
        raise FirstbootError(f"云端拒绝注册，认领码无效、已使用或已过期 (enrollment with {cloud} failed: {err}). "
                             "Ask the operator for a new claim token and run `joyprov configure` again; "
                             "the token stays on the boot partition") from err


def _grpc_code(err: BaseException) -> str:
    """The gRPC status code name behind a translated error ("" when there is none: a local failure)."""
    cause = err.__cause__
    code = getattr(cause, "code", None)
    try:
        return code().name if callable(code) else ""
    except Exception:  # a cause without a real code()
        return ""


def run_firstboot_retrying(boot_dir: Path, *, data_dir: Path = DEFAULT_DATA_DIR, **kw: Any) -> FirstbootResult:
    """`run_firstboot` with the retry policy and status file of the module doc; FirstbootError when it
    gives up (the status file and one ERROR log line say why, and whether the next boot retries)."""
    from device.provisioning_status import FirstbootStatus, write_status

    deadline = time.monotonic() + RETRY_FOR_S
    delay, attempts = BACKOFF_INITIAL_S, 0
    forced_id = str(kw.get("device_id") or "")  # the notice advertises under it (device/notice_advertise.py)
    write_status(data_dir, FirstbootStatus("running", device_id=forced_id))
    while True:
        attempts += 1
        try:
            result = run_firstboot(boot_dir, data_dir=data_dir, **kw)
        except DeviceError as err:
            retryable = getattr(err, "retryable", False)
            if retryable and time.monotonic() + delay < deadline:
                write_status(data_dir, FirstbootStatus("retrying", str(err), True, attempts, device_id=forced_id))
                log.warning("firstboot: attempt %d failed, retrying in %.0f s: %s", attempts, delay, err)
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            reason = str(err)
            if retryable:
                reason += f"; gave up after {attempts} attempts, the next boot tries again"
            write_status(data_dir, FirstbootStatus("failed", reason, retryable, attempts, device_id=forced_id))
            log.error("firstboot failed (%s): %s", "retryable, next boot" if retryable else "not retried", reason)
            raise FirstbootError(reason, retryable=retryable) from err
        write_status(data_dir, FirstbootStatus("done", "", False, attempts, device_id=forced_id))
        log.info("firstboot: device %s enrolled after %d attempt(s)", result.device_id, attempts)
        return result


def run_firstboot(boot_dir: Path, *, config_out: Path = DEFAULT_CONFIG_OUT, data_dir: Path = DEFAULT_DATA_DIR,
                  system_root: Path = Path("/"), device_id: str | None = None) -> FirstbootResult:
    """Apply the first-boot config in `boot_dir` (see the module doc); DeviceError says what failed."""
    from device.config import load_config

    path = boot_dir / FILENAME
    try:
        cfg = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DeviceError(f"no {FILENAME} in {boot_dir}: write one with `joyprov configure`") from err
    except (OSError, UnicodeDecodeError) as err:
        raise DeviceError(f"{path} cannot be read: {err}") from err
    except FirstbootFormatError as err:
        raise DeviceError(f"{path} is invalid: {err}. Write it again with `joyprov configure`") from err
    result = FirstbootResult()
    _apply_system(cfg, system_root, result)
    if cfg.wifi_psk is not None:
        cfg = cfg.without_secrets(claim_token=False, wifi_psk=True)
        erase_in_place(path, render(cfg))
        result.erased.append("wifi.psk")
    if cfg.claim_token is None:
        raise DeviceError(f"{path} has no claim token left but the device is not enrolled: issue a new "
                          "token and run `joyprov configure` again")
    result.device_id = device_id_for(cfg, system_root, device_id)
    device_cfg = load_config(None, profile=cfg.profile,
                             overrides={"device": {"id": result.device_id, "data_dir": str(data_dir)}})
    identity_ca = device_cfg.identity_dir / "ca.pem"
    if cfg.ca_pem is not None:
        ca_pem = cfg.ca_pem.encode("ascii")
    elif identity_ca.is_file():
        ca_pem = identity_ca.read_bytes()
    else:
        raise DeviceError("no cloud CA: neither ca_pem in the first-boot config nor "
                          f"{identity_ca}; run `joyprov configure --ca-file ca.pem` again")
    ident = _enroll(cfg.cloud, cfg.claim_token, device_cfg, ca_pem, cfg.hostname or "")
    result.enrolled = True
    result.device_id, result.site_id, result.store_id = ident.device_id, ident.site_id, ident.store_id
    result.sync_target = ident.sync_target
    text = _device_toml(cfg, ident.device_id, ident.site_id, ident.store_id, data_dir, ident.sync_target)
    tmp_cfg = config_out.with_name(f".{config_out.name}.check")
    _write_file(tmp_cfg, text, 0o644)
    try:
        load_config(tmp_cfg)  # never leave a device config the app would refuse
    finally:
        tmp_cfg.unlink(missing_ok=True)
    _write_file(config_out, text, 0o644)
    result.config_path = str(config_out)
    erase_in_place(path, render(cfg.without_secrets()))
    result.erased.append("cloud.claim_token")
    os.replace(path, boot_dir / DONE_FILENAME)
    fd = os.open(boot_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return result

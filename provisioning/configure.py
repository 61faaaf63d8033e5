"""`joyprov configure` and `joyprov inspect`: the first-boot config on an image's FAT boot partition."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from api.firstboot import FILENAME, FirstbootConfig, FirstbootFormatError, parse, render
from provisioning.blockdev import check_target
from provisioning.errors import BadInput, TargetIOError
from provisioning.fat32 import Fat32
from provisioning.partitions import Partition, find_boot_partition, read_partitions

PROFILE_DIR = Path(__file__).resolve().parents[1] / "hardware" / "profiles"
MAX_PSK_FILE = 4096


def known_profiles() -> list[str]:
    """Profile names from hardware/profiles (the data provisioning may read)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def read_psk_file(path: Path) -> str:
    """The WiFi passphrase from a file (first line, trailing newline stripped): never from argv."""
    try:
        if path.stat().st_size > MAX_PSK_FILE:
            raise BadInput(f"WiFi passphrase file {path} is too large to be a passphrase")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise BadInput(f"WiFi passphrase file {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"WiFi passphrase file {path} cannot be read: {err}") from err
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise BadInput(f"WiFi passphrase file {path} is empty: put the passphrase on its first line")
    return lines[0]


def read_ca_file(path: Path) -> str:
    """The cloud CA certificate (PEM) the device will trust when it enrolls."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError as err:
        raise BadInput(f"CA file {path} does not exist (it is the ca.pem of `joyedge-cloud ca init`)") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BadInput(f"CA file {path} cannot be read as PEM: {err}") from err
    return text.strip() + "\n"


def build_config(*, profile: str, cloud: str, claim_token: str, hostname: str | None,
                 wifi_ssid: str | None, wifi_psk_file: Path | None,
                 ca_file: Path | None = None) -> FirstbootConfig:
    """Validate the installer's inputs into a FirstbootConfig (BadInput names the bad one)."""
    if profile not in known_profiles():
        raise BadInput(f"profile {profile!r}: choose one of {', '.join(known_profiles())}")
    if wifi_psk_file is not None and wifi_ssid is None:
        raise BadInput("--wifi-psk-file needs --wifi-ssid")
    psk = read_psk_file(wifi_psk_file) if wifi_psk_file is not None else None
    cfg = FirstbootConfig(profile=profile, cloud=cloud, claim_token=claim_token, hostname=hostname,
                          wifi_ssid=wifi_ssid, wifi_psk=psk,
                          ca_pem=read_ca_file(ca_file) if ca_file is not None else None)
    try:
        return cfg.validate()
    except FirstbootFormatError as err:
        raise BadInput(str(err)) from err


@dataclass
class Written:
    """Where the config went."""

    target: str
    partition: Partition
    file: str
    bytes: int


def _open(path: Path, write: bool, force: bool):
    if write:
        target = check_target(path, force=force)
        if target.kind == "new":
            raise BadInput(f"target {path} does not exist: flash an image to it first (`joyprov flash`)")
    elif not path.exists():
        raise BadInput(f"target {path} does not exist")
    try:
        return open(path, "r+b" if write else "rb")
    except OSError as err:
        raise TargetIOError(f"cannot open {path}: {err.strerror}") from err


def configure(target: Path, cfg: FirstbootConfig, *, force: bool = False) -> Written:
    """Write the first-boot file into the boot partition of `target` (image file or card)."""
    text = render(cfg).encode("utf-8")
    with _open(target, True, force) as f:
        part = find_boot_partition(f)
        try:
            Fat32(f, part.offset).write_file(FILENAME, text)
        except OSError as err:
            raise TargetIOError(f"writing {target} failed: {err.strerror}") from err
        f.flush()
        os.fsync(f.fileno())
    return Written(target=str(target), partition=part, file=FILENAME, bytes=len(text))


def read_config(target: Path) -> tuple[Partition, FirstbootConfig | None, str | None]:
    """The boot partition and the first-boot config on it (None and the reason when absent/bad)."""
    with _open(target, False, False) as f:
        part = find_boot_partition(f)
        fs = Fat32(f, part.offset)
        if fs.find(FILENAME) is None:
            return part, None, f"no {FILENAME} on the boot partition"
        try:
            return part, parse(fs.read_file(FILENAME).decode("utf-8")), None
        except (FirstbootFormatError, UnicodeDecodeError) as err:
            return part, None, f"{FILENAME} is invalid: {err}"


def list_partitions(target: Path) -> list[Partition]:
    """All partitions of `target`, for `joyprov inspect`."""
    with _open(target, False, False) as f:
        return read_partitions(f)

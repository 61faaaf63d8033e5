"""Is a flash/configure target safe to write? Block devices are checked against what the kernel says.

A block device is refused when it, its whole disk or any partition of that disk is mounted
(`/proc/self/mountinfo` by major:minor, `/proc/mounts` by path), used as swap (`/proc/swaps`), or
held by another device (`/sys/block/*/holders`: LVM, dm-crypt, md RAID — how a root filesystem
on LVM shows up). The disk holding `/` is always one of these, so the system disk is refused too.
A regular file is fine, unless it is attached to a loop device (it may be mounted through it).
`--force` overrides, for the technician who knows better.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from provisioning.errors import BadInput, Refused

# Roots of the kernel's views; tests point them at a fabricated tree.
PROC = Path("/proc")
SYS = Path("/sys")
# Mount points that make a disk the system disk (named in the refusal).
SYSTEM_MOUNTS = ("/", "/boot", "/boot/firmware", "/boot/efi", "/usr", "/var", "/home")


@dataclass
class Target:
    """A flash or configure target as found on this machine."""

    path: Path
    kind: str  # "block" | "file" | "new" (a file that does not exist yet)
    size: int | None  # bytes; None for a new file
    disk: str | None = None  # whole-disk kernel name for a block device (sda, mmcblk0)
    removable: bool | None = None
    uses: list[str] = field(default_factory=list)  # why it is in use (empty when safe)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _decode_mount_field(text: str) -> str:
    # /proc/mounts and mountinfo escape space, tab, newline and backslash as octal.
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(esc, ch)
    return text


def disk_devices(majmin: str, sys_root: Path | None = None) -> tuple[str, dict[str, str]]:
    """The whole disk of a block device and {kernel name: "major:minor"} of it and its partitions."""
    sys_root = sys_root or SYS
    node = sys_root / "dev" / "block" / majmin
    try:
        real = node.resolve(strict=True)
    except OSError as err:
        raise BadInput(f"block device {majmin} is not in {sys_root}/dev/block: is it still plugged in?") from err
    disk_dir = real.parent if (real / "partition").exists() else real
    devices = {disk_dir.name: _read(disk_dir / "dev").strip()}
    for child in sorted(disk_dir.iterdir()):
        if (child / "partition").exists():
            devices[child.name] = _read(child / "dev").strip()
    return disk_dir.name, devices


def find_uses(devices: dict[str, str], proc_root: Path | None = None,
              sys_root: Path | None = None) -> list[str]:
    """Every way the kernel says these devices are in use, as sentences naming the device."""
    proc_root, sys_root = proc_root or PROC, sys_root or SYS
    ids = {v: k for k, v in devices.items() if v}
    paths = {f"/dev/{name}": name for name in devices}
    uses: list[str] = []
    for line in _read(proc_root / "self" / "mountinfo").splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[2] in ids:
            where = _decode_mount_field(parts[4])
            label = " (system disk)" if where in SYSTEM_MOUNTS else ""
            uses.append(f"/dev/{ids[parts[2]]} is mounted on {where}{label}")
    for line in _read(proc_root / "mounts").splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] in paths:
            text = f"{parts[0]} is mounted on {_decode_mount_field(parts[1])}"
            if not any(u.startswith(text) for u in uses):
                uses.append(text)
    for line in _read(proc_root / "swaps").splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] in paths:
            uses.append(f"{parts[0]} is in use as swap")
    disk = next(iter(devices), None)
    for name in devices:
        holders_dir = sys_root / "block" / (name if name == disk else f"{disk}/{name}") / "holders"
        try:
            holders = sorted(p.name for p in holders_dir.iterdir())
        except OSError:
            holders = []
        if holders:
            uses.append(f"/dev/{name} is held by {', '.join(holders)} (LVM, dm-crypt or RAID)")
    return uses


def _loop_users(path: Path, sys_root: Path) -> list[str]:
    real = str(path.resolve())
    out = []
    for backing in sorted(sys_root.glob("block/loop*/loop/backing_file")):
        if _read(backing).strip() == real:
            out.append(f"{path} is attached to /dev/{backing.parent.parent.name} (losetup -d to detach)")
    return out


def inspect_target(path: Path, proc_root: Path | None = None, sys_root: Path | None = None) -> Target:
    """Describe a target and list why it is in use; never writes."""
    sys_root = sys_root or SYS
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if path.parent.is_dir():
            return Target(path=path, kind="new", size=None)
        raise BadInput(f"target {path}: neither a device nor a file in an existing directory") from None
    except OSError as err:
        raise BadInput(f"target {path}: {err.strerror}") from err
    if stat.S_ISREG(st.st_mode):
        return Target(path=path, kind="file", size=st.st_size, uses=_loop_users(path, sys_root))
    if not stat.S_ISBLK(st.st_mode):
        raise BadInput(f"target {path}: not a block device or a regular file")
    majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    disk, devices = disk_devices(majmin, sys_root)
    size_sectors = _read(sys_root / "dev" / "block" / majmin / "size").strip()
    removable = _read(sys_root / "block" / disk / "removable").strip()
    return Target(path=path, kind="block", disk=disk,
                  size=int(size_sectors) * 512 if size_sectors.isdigit() else None,
                  removable=removable == "1" if removable else None,
                  uses=find_uses(devices, proc_root, sys_root))


def check_target(path: Path, *, force: bool = False, proc_root: Path | None = None,
                 sys_root: Path | None = None) -> Target:
    """The target, or Refused naming each use and what to do; `force` lets a known risk through."""
    target = inspect_target(path, proc_root, sys_root)
    if target.uses and not force:
        raise Refused(f"refusing to write {path}: " + "; ".join(target.uses)
                      + ". Unmount it (or pick the right device: `lsblk`), or pass --force if you are sure")
    return target

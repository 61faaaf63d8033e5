"""Flash targets: the system disk and mounted disks are refused; a real (loop) block device is written
and verified. Kernel views that cannot be staged here (LVM holders, a mounted partition of a card)
are checked on a fabricated /proc + /sys tree with the same layout as the kernel's."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning import errors
from provisioning.blockdev import check_target, find_uses, inspect_target
from provisioning.cli import main
from provisioning.errors import Refused


def _root_majmin() -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[4] == "/":
            return parts[2]
    raise AssertionError("no / in mountinfo")


def test_the_system_disk_is_refused(tmp_path):
    """GIVEN a device node for the disk that holds / WHEN checked THEN refused, naming the mount.
    (Only the read-only check runs here: a bug must never be able to write to this machine's disk.)"""
    majmin = _root_majmin()
    major, minor = map(int, majmin.split(":"))
    if major == 0:
        pytest.skip("/ is not on a block device here (overlay/tmpfs root)")
    node = tmp_path / "rootdisk"
    try:
        os.mknod(node, 0o600 | 0o060000, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("creating a device node needs root")
    with pytest.raises(Refused) as info:
        check_target(node)
    assert "mounted on / (system disk)" in str(info.value) and "--force" in str(info.value)


def _fake_tree(root: Path, *, mounted_part: bool = False, holder: bool = False, swap: bool = False) -> dict[str, str]:
    """/sys and /proc for a card sdb with partitions sdb1, sdb2 (the kernel's layout)."""
    disk = root / "sys/devices/pci0/usb1/block/sdb"
    for name, majmin, is_part in (("sdb", "8:16", False), ("sdb1", "8:17", True), ("sdb2", "8:18", True)):
        d = disk if not is_part else disk / name
        (d / "holders").mkdir(parents=True, exist_ok=True)
        (d / "dev").write_text(majmin + "\n")
        if is_part:
            (d / "partition").write_text(name[-1] + "\n")
        (root / "sys/dev/block").mkdir(parents=True, exist_ok=True)
        (root / "sys/dev/block" / majmin).symlink_to(d)
    (root / "sys/block").mkdir(parents=True, exist_ok=True)
    (root / "sys/block/sdb").symlink_to(disk)
    if holder:
        (disk / "sdb2" / "holders" / "dm-0").mkdir()
    (root / "proc/self").mkdir(parents=True)
    info = "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
    mounts = "/dev/vda / ext4 rw 0 0\n"
    if mounted_part:
        info += "90 27 8:17 / /media/tech/boot\\040fs rw - vfat /dev/sdb1 rw\n"
        mounts += "/dev/sdb1 /media/tech/boot\\040fs vfat rw 0 0\n"
    (root / "proc/self/mountinfo").write_text(info)
    (root / "proc/mounts").write_text(mounts)
    swaps = "Filename Type Size Used Priority\n" + ("/dev/sdb2 partition 1024 0 -2\n" if swap else "")
    (root / "proc/swaps").write_text(swaps)
    return {"sdb": "8:16", "sdb1": "8:17", "sdb2": "8:18"}


@pytest.mark.parametrize("kw,expect", [
    ({}, []),
    ({"mounted_part": True}, ["/dev/sdb1 is mounted on /media/tech/boot fs"]),
    ({"holder": True}, ["/dev/sdb2 is held by dm-0 (LVM, dm-crypt or RAID)"]),
    ({"swap": True}, ["/dev/sdb2 is in use as swap"]),
])
def test_uses_of_a_card_and_its_partitions(tmp_path, kw, expect):
    """Writing the whole card is refused when any of its partitions is in use, whichever way."""
    devices = _fake_tree(tmp_path, **kw)
    assert find_uses(devices, tmp_path / "proc", tmp_path / "sys") == expect


def test_whole_disk_and_partitions_are_found_from_a_partition(tmp_path):
    from provisioning.blockdev import disk_devices

    _fake_tree(tmp_path)
    assert disk_devices("8:18", tmp_path / "sys") == ("sdb", {"sdb": "8:16", "sdb1": "8:17", "sdb2": "8:18"})


# --- real loop devices (root only): a block device we own, mounted or not --------------------------

def _run(*cmd: str) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode:
        raise OSError(f"{cmd}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[Path]:
    try:
        dev = Path(_run("losetup", "--find", "--show", str(backing)))
    except (OSError, FileNotFoundError) as err:
        pytest.skip(f"loop devices are not available here (needs root): {err}")
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", str(dev)], capture_output=True, timeout=60, check=False)


def test_flash_and_verify_onto_a_real_block_device(tmp_path, image, capsys):
    backing = tmp_path / "card.bin"
    with open(backing, "wb") as f:
        f.truncate(96 << 20)
    with loop_device(backing) as dev:
        assert inspect_target(dev).kind == "block"
        assert main(["flash", str(image), str(dev), "--verify", "--quiet"]) == 0
        assert "verified" in capsys.readouterr().out
    size = image.stat().st_size
    with open(backing, "rb") as f:
        assert hashlib.sha256(f.read(size)).digest() == hashlib.sha256(image.read_bytes()).digest()


def test_a_mounted_block_device_is_refused_and_untouched(tmp_path, image, capsys):
    backing = tmp_path / "mounted.bin"
    with open(backing, "wb") as f:
        f.truncate(16 << 20)
    _run("mkfs.ext4", "-q", str(backing))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing) as dev:
        try:
            _run("mount", str(dev), str(mnt))
        except OSError as err:
            pytest.skip(f"cannot mount here: {err}")
        try:
            assert main(["flash", str(image), str(dev), "--quiet"]) == errors.EXIT_REFUSED
            err = capsys.readouterr().err
            assert f"{dev} is mounted on {mnt}" in err and "Unmount it" in err
            assert main(["configure", str(dev), "--profile", "mirror", "--cloud", "c:1",
                         "--claim-token", "x" * 10]) == errors.EXIT_REFUSED
        finally:
            _run("umount", str(mnt))
        # the backing file of an attached loop device is refused too (it may be mounted through it)
        assert main(["flash", str(image), str(backing), "--quiet"]) == errors.EXIT_REFUSED
        assert "attached to" in capsys.readouterr().err
    # Mounting ext4 itself writes (mount count, journal), so compare what a flash would have changed.
    head = backing.read_bytes()[:2048]
    assert head[510:512] != b"\x55\xaa" and head[1080:1082] == b"\x53\xef"  # no MBR; ext4 intact

"""Disk images made by the real tools (sfdisk, mkfs.fat) and read back by mtools, as an installer's would be."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MIB = 1 << 20
BOOT_START = 2048  # sectors: 1 MiB, as Raspberry Pi OS aligns its boot partition (there: 4 MiB)
BOOT_SECTORS = 131072  # 64 MiB: enough clusters for FAT32 with 512-byte clusters
IMAGE_BYTES = 80 * MIB
CONFIG_TXT = b"# Raspberry Pi firmware config\narm_64bit=1\n"


def need(tool: str) -> str:
    """The path of a Debian tool the tests build images with; fail (never skip) when missing."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{tool} is missing: run tools/bootstrap-system.sh (dosfstools, mtools, fdisk)")
    return path


def run(*cmd: str, input: bytes | None = None) -> bytes:
    done = subprocess.run(cmd, input=input, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, f"{cmd}: {done.stderr.decode(errors='replace')}"
    return done.stdout


def make_image(path: Path, table: str = "dos") -> Path:
    """A disk image: partition table (MBR or GPT), FAT32 first partition with config.txt, a Linux second."""
    with open(path, "wb") as f:
        f.truncate(IMAGE_BYTES)
    if table == "dos":
        script = f"label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\nstart={BOOT_START + BOOT_SECTORS}, type=83\n"
    else:
        script = (f"label: gpt\nstart={BOOT_START}, size={BOOT_SECTORS}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"
                  f"start={BOOT_START + BOOT_SECTORS}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n")
    run(need("sfdisk"), "-q", str(path), input=script.encode())
    run(need("mkfs.fat"), "-F", "32", "-s", "1", "-n", "BOOTFS", "--offset", str(BOOT_START), str(path),
        str(BOOT_SECTORS // 2))
    src = path.with_name("config.txt")
    src.write_bytes(CONFIG_TXT)
    run(need("mcopy"), "-i", f"{path}@@{BOOT_START * 512}", str(src), "::config.txt")
    src.unlink()
    return path


def mtype(image: Path, name: str) -> bytes:
    """A file from the image's boot partition, read by mtools (not by our FAT code)."""
    return run(need("mtype"), "-i", f"{image}@@{BOOT_START * 512}", f"::{name}")


def fsck_boot(image: Path, tmp: Path) -> str:
    """fsck.fat -n on a copy of the boot partition: our writes must leave a consistent file system."""
    part = tmp / "boot-part.img"
    with open(image, "rb") as src, open(part, "wb") as dst:
        src.seek(BOOT_START * 512)
        dst.write(src.read(BOOT_SECTORS * 512))
    done = subprocess.run([need("fsck.fat"), "-n", str(part)], capture_output=True, text=True, timeout=60)
    part.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_image(tmp_path / "joyedge.img")


@pytest.fixture
def psk_file(tmp_path: Path) -> Path:
    p = tmp_path / "wifi.psk"
    p.write_text("Mall-Staff-Pass-2026\n")
    p.chmod(0o600)
    return p

"""Find the FAT boot partition of a disk image through its MBR or GPT partition table.

Raspberry Pi OS images carry an MBR with a FAT32 (type 0x0c) first partition; GPT images carry a
protective MBR (type 0xee) and a table whose boot partition is an EFI System or Microsoft Basic
Data partition. Sectors are 512 bytes (images and SD cards); a GPT header at 4096 is also found.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from provisioning.errors import BadInput

FAT_MBR_TYPES = {0x01: "FAT12", 0x04: "FAT16", 0x06: "FAT16", 0x0B: "FAT32", 0x0C: "FAT32 (LBA)",
                 0x0E: "FAT16 (LBA)", 0xEF: "EFI System"}
GPT_FAT_TYPES = {
    uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"): "EFI System",
    uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"): "Microsoft basic data",
}


@dataclass(frozen=True)
class Partition:
    """One partition: its number (1-based), byte offset and size, and what the table calls it."""

    number: int
    offset: int
    size: int
    type: str
    fat: bool


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    data = f.read(n)
    if len(data) != n:
        raise BadInput(f"image ends at byte {offset + len(data)}: too short for a partition table")
    return data


def _gpt(f: BinaryIO, sector: int) -> list[Partition]:
    hdr = _read_at(f, sector, 92)
    if hdr[:8] != b"EFI PART":
        raise KeyError
    size = struct.unpack_from("<I", hdr, 12)[0]
    crc = struct.unpack_from("<I", hdr, 16)[0]
    full = _read_at(f, sector, size)
    if zlib.crc32(full[:16] + b"\0\0\0\0" + full[20:]) != crc:
        raise BadInput("GPT header checksum is wrong: the image is damaged")
    entries_lba, count, entry_size = struct.unpack_from("<QII", hdr, 72)
    if count > 1024 or entry_size < 128 or entry_size > 4096:
        raise BadInput("GPT header has an implausible partition array")
    table = _read_at(f, entries_lba * sector, count * entry_size)
    out = []
    for i in range(count):
        e = table[i * entry_size:(i + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=e[:16])
        if type_guid.int == 0:
            continue
        first, last = struct.unpack_from("<QQ", e, 32)
        name = GPT_FAT_TYPES.get(type_guid, str(type_guid))
        out.append(Partition(i + 1, first * sector, (last - first + 1) * sector, name,
                             type_guid in GPT_FAT_TYPES))
    return out


def read_partitions(f: BinaryIO) -> list[Partition]:
    """The partitions of the disk behind `f` (MBR primary partitions or GPT)."""
    mbr = _read_at(f, 0, 512)
    if mbr[510:512] != b"\x55\xaa":
        raise BadInput("no partition table (no MBR boot signature): is this a JoyEdge/Raspberry Pi OS image?")
    entries = [mbr[446 + 16 * i: 462 + 16 * i] for i in range(4)]
    if any(e[4] == 0xEE for e in entries):
        for sector in (512, 4096):
            try:
                return _gpt(f, sector)
            except KeyError:
                continue
        raise BadInput("protective MBR without a GPT header: the image is damaged")
    out = []
    for i, e in enumerate(entries):
        ptype = e[4]
        start, count = struct.unpack_from("<II", e, 8)
        if ptype == 0 or count == 0:
            continue
        out.append(Partition(i + 1, start * 512, count * 512, FAT_MBR_TYPES.get(ptype, f"type 0x{ptype:02x}"),
                             ptype in FAT_MBR_TYPES))
    return out


def find_boot_partition(f: BinaryIO) -> Partition:
    """The first FAT partition: where the Raspberry Pi firmware (and our first-boot file) lives."""
    parts = read_partitions(f)
    for p in parts:
        if p.fat:
            return p
    listed = ", ".join(f"{p.number}: {p.type}" for p in parts) or "none"
    raise BadInput(f"no FAT boot partition in the partition table (partitions: {listed})")

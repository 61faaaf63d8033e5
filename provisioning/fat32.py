"""A minimal FAT32 reader/writer for one file in the root directory of a partition inside an image.

Just enough to put `joyedge-firstboot.toml` on a Raspberry Pi OS boot partition without mounting
it (no root, no loop device, works on an image file or a card): parse the BPB, read the FAT into
RAM, walk the root directory (8.3 and VFAT long names), allocate a cluster chain, write the data,
then point the directory entry at it. Why not pyfatfs: it depends on PyFilesystem2 (`fs`), whose
import needs `pkg_resources`, which setuptools ≥ 81 no longer ships.

Crash safety of a replace: new data and its FAT chain are written first (every FAT copy), then the
32-byte directory entry is switched to the new chain in one sector write, then the old clusters
are zeroed (they held secrets) and freed. A crash at any point leaves either the old or the new
file; at worst a few lost clusters that fsck reclaims. FSInfo's free count is recomputed exactly.
References: Microsoft "FAT: General Overview of On-Disk Format" 1.03 (BPB, FSInfo, §7 long names).
"""

from __future__ import annotations

import os
import struct
import time
from array import array
from dataclasses import dataclass
from typing import BinaryIO

from provisioning.errors import BadInput

EOC = 0x0FFFFFFF
FREE = 0
ATTR_LFN = 0x0F
ATTR_DIR = 0x10
ATTR_VOLUME = 0x08
ATTR_ARCHIVE = 0x20
_SHORT_OK = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~")


@dataclass
class DirEntry:
    """A file in the root directory: its names, first cluster, size and where its slots are."""

    long_name: str
    short_name: bytes  # 11 bytes, space-padded
    attr: int
    cluster: int
    size: int
    slots: list[int]  # directory slot indices: long-name slots first, the short entry last


def _short_display(name11: bytes) -> str:
    base, ext = name11[:8].rstrip(b" "), name11[8:].rstrip(b" ")
    return (base + (b"." + ext if ext else b"")).decode("ascii", "replace")


def lfn_checksum(name11: bytes) -> int:
    """The checksum every long-name slot carries of its short entry (spec §7.2)."""
    s = 0
    for c in name11:
        s = (((s & 1) << 7) + (s >> 1) + c) & 0xFF
    return s


def _dos_datetime(t: float | None = None) -> tuple[int, int]:
    lt = time.localtime(t)
    year = min(max(lt.tm_year, 1980), 2107)
    return ((lt.tm_hour << 11) | (lt.tm_min << 5) | (lt.tm_sec // 2),
            ((year - 1980) << 9) | (lt.tm_mon << 5) | lt.tm_mday)


def exact_short_name(name: str) -> bytes | None:
    """The 11-byte 8.3 form when `name` is already a valid upper-case 8.3 name (no long name needed)."""
    base, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    if not (1 <= len(base) <= 8 and len(ext) <= 3) or (dot and not ext):
        return None
    raw = (base + ext).encode("ascii", "replace")
    if not all(c in _SHORT_OK for c in raw):
        return None
    return base.encode().ljust(8) + ext.encode().ljust(3)


def _short_basis(name: str) -> tuple[bytes, bytes]:
    def clean(part: str) -> bytes:
        out = bytearray()
        for ch in part.upper():
            if ch in " .":
                continue
            b = ch.encode("ascii", "replace")[:1]
            out += b if b[0] in _SHORT_OK else b"_"
        return bytes(out)

    stem, _, ext = name.lstrip(".").rpartition(".")
    if not stem:
        stem, ext = ext, ""
    return clean(stem) or b"_", clean(ext)[:3]


class Fat32:
    """One FAT32 file system at `offset` bytes into `f` (an image file or a block device, opened r+b)."""

    def __init__(self, f: BinaryIO, offset: int = 0) -> None:
        self.f = f
        self.offset = offset
        bs = self._read(0, 512)
        if bs[510:512] != b"\x55\xaa":
            raise BadInput("boot partition has no FAT boot sector: is it formatted?")
        (self.bps, self.spc, self.rsvd, self.nfats, root_ent, tot16, _media, fatsz16) = struct.unpack_from(
            "<HBHBHHBH", bs, 11)
        tot32, fatsz32, ext_flags, _ver, self.root_cluster, self.fsinfo_sector = struct.unpack_from(
            "<IIHHIH", bs, 32)
        if self.bps not in (512, 1024, 2048, 4096) or self.spc == 0 or self.spc & (self.spc - 1):
            raise BadInput("boot partition: not a FAT file system (bad bytes per sector or cluster size)")
        if fatsz16 != 0 or root_ent != 0 or fatsz32 == 0:
            raise BadInput("boot partition is FAT12/FAT16; joyprov writes FAT32 boot partitions "
                           "(as Raspberry Pi OS images have)")
        self.fat_sectors = fatsz32
        self.cluster_size = self.bps * self.spc
        self.data_sector = self.rsvd + self.nfats * fatsz32
        total = tot32 or tot16
        self.clusters = (total - self.data_sector) // self.spc
        # With mirroring off (bit 7) only the active FAT is live; otherwise every copy is kept equal.
        self.fat_copies = [ext_flags & 0x0F] if ext_flags & 0x80 else list(range(self.nfats))
        raw = self._read(self.rsvd * self.bps + self.fat_copies[0] * fatsz32 * self.bps,
                         min(fatsz32 * self.bps, (self.clusters + 2) * 4))
        self.fat = array("I")
        self.fat.frombytes(raw)
        if self.fat.itemsize != 4:
            raise RuntimeError("array('I') is not 32-bit on this platform")
        self._dirty: set[int] = set()

    # -- low level ---------------------------------------------------------------------------
    def _read(self, pos: int, n: int) -> bytes:
        self.f.seek(self.offset + pos)
        data = self.f.read(n)
        if len(data) != n:
            raise BadInput(f"boot partition ends early (wanted {n} bytes at {pos})")
        return data

    def _write(self, pos: int, data: bytes) -> None:
        self.f.seek(self.offset + pos)
        self.f.write(data)

    def _cluster_pos(self, cluster: int) -> int:
        if not 2 <= cluster < self.clusters + 2:
            raise BadInput(f"boot partition is damaged: cluster {cluster} out of range")
        return (self.data_sector + (cluster - 2) * self.spc) * self.bps

    def _next(self, cluster: int) -> int:
        return self.fat[cluster] & 0x0FFFFFFF

    def _set(self, cluster: int, value: int) -> None:
        self.fat[cluster] = (self.fat[cluster] & 0xF0000000) | value  # top 4 bits are reserved
        self._dirty.add(cluster)

    def chain(self, first: int) -> list[int]:
        """The clusters of a file, in order; a loop or a free/bad link is reported as damage."""
        out: list[int] = []
        c = first
        while 2 <= c < 0x0FFFFFF8:
            if len(out) > self.clusters or c >= self.clusters + 2:
                raise BadInput("boot partition is damaged: broken cluster chain (run fsck.fat)")
            out.append(c)
            c = self._next(c)
            if c in (FREE, 0x0FFFFFF7):
                raise BadInput("boot partition is damaged: chain runs into a free or bad cluster")
        return out

    def _allocate(self, n: int) -> list[int]:
        got: list[int] = []
        for c in range(2, self.clusters + 2):
            if len(got) == n:
                break
            if self._next(c) == FREE:
                got.append(c)
        if len(got) < n:
            raise BadInput("boot partition is full: free some space on it")
        for a, b in zip(got, got[1:] + [EOC], strict=True):
            self._set(a, b)
        return got

    def _flush_fat(self) -> None:
        if not self._dirty:
            return
        sectors = sorted({c * 4 // self.bps for c in self._dirty})
        raw = self.fat.tobytes()
        for copy in self.fat_copies:
            base = (self.rsvd + copy * self.fat_sectors) * self.bps
            for s in sectors:
                self._write(base + s * self.bps, raw[s * self.bps:(s + 1) * self.bps].ljust(self.bps, b"\0"))
        self._dirty.clear()
        self._update_fsinfo()

    def _update_fsinfo(self) -> None:
        pos = self.fsinfo_sector * self.bps
        if self.fsinfo_sector in (0, 0xFFFF):
            return
        sec = bytearray(self._read(pos, 512))
        if sec[:4] != b"RRaA" or sec[484:488] != b"rrAa":
            return
        free = sum(1 for c in range(2, self.clusters + 2) if self._next(c) == FREE)
        struct.pack_into("<II", sec, 488, free, 0xFFFFFFFF)  # next-free unknown: a hint only
        self._write(pos, bytes(sec))

    def _sync(self) -> None:
        self.f.flush()
        try:
            os.fsync(self.f.fileno())
        except (OSError, AttributeError, ValueError):
            pass  # BytesIO in a caller's own use: nothing to sync

    # -- root directory ----------------------------------------------------------------------
    def _dir_slots(self) -> tuple[list[int], bytes]:
        clusters = self.chain(self.root_cluster)
        return clusters, b"".join(self._read(self._cluster_pos(c), self.cluster_size) for c in clusters)

    def _slot_pos(self, clusters: list[int], slot: int) -> int:
        per = self.cluster_size // 32
        return self._cluster_pos(clusters[slot // per]) + (slot % per) * 32

    def entries(self) -> list[DirEntry]:
        """Files and folders in the root directory (not the volume label, not deleted entries)."""
        _, data = self._dir_slots()
        out: list[DirEntry] = []
        parts: dict[int, str] = {}
        lfn_slots: list[int] = []
        checksum = -1
        for slot in range(len(data) // 32):
            e = data[slot * 32:(slot + 1) * 32]
            if e[0] == 0:
                break
            if e[0] == 0xE5:
                parts, lfn_slots = {}, []
                continue
            if e[11] == ATTR_LFN:
                if e[0] & 0x40:
                    parts, lfn_slots, checksum = {}, [], e[13]
                chars = (e[1:11] + e[14:26] + e[28:32]).decode("utf-16-le", "replace")
                parts[e[0] & 0x1F] = chars.split("\0", 1)[0]
                lfn_slots.append(slot)
                continue
            name11 = e[:11]
            long_name = ""
            if parts and checksum == lfn_checksum(name11):
                long_name = "".join(parts[k] for k in sorted(parts))
            slots = [*lfn_slots, slot] if long_name else [slot]
            parts, lfn_slots = {}, []
            if e[11] & ATTR_VOLUME:
                continue
            hi, lo = struct.unpack_from("<H", e, 20)[0], struct.unpack_from("<H", e, 26)[0]
            out.append(DirEntry(long_name or _short_display(name11), name11, e[11], (hi << 16) | lo,
                                struct.unpack_from("<I", e, 28)[0], slots))
        return out

    def find(self, name: str) -> DirEntry | None:
        """The root-directory entry whose long or 8.3 name matches `name` (case-insensitive)."""
        want = name.casefold()
        for e in self.entries():
            if e.long_name.casefold() == want or _short_display(e.short_name).casefold() == want:
                return e
        return None

    def read_file(self, name: str) -> bytes:
        """The contents of a root-directory file; BadInput when it is not there."""
        e = self.find(name)
        if e is None or e.attr & ATTR_DIR:
            raise BadInput(f"{name} is not on the boot partition")
        data = b"".join(self._read(self._cluster_pos(c), self.cluster_size) for c in self.chain(e.cluster))
        if len(data) < e.size:
            raise BadInput(f"{name} on the boot partition is damaged: shorter than its size")
        return data[:e.size]

    def _unique_short(self, name: str) -> bytes:
        exact = exact_short_name(name)
        taken = {e.short_name for e in self.entries()}
        if exact is not None and exact not in taken:
            return exact
        stem, ext = _short_basis(name)
        for n in range(1, 1000000):
            tail = b"~" + str(n).encode()
            cand = (stem[:8 - len(tail)] + tail).ljust(8) + ext.ljust(3)
            if cand not in taken:
                return cand
        raise BadInput("boot partition root directory has no free 8.3 name left")

    def _free_run(self, n: int) -> int | None:
        _, data = self._dir_slots()
        run_start, run = 0, 0
        for slot in range(len(data) // 32):
            first = data[slot * 32]
            if first in (0, 0xE5):
                if run == 0:
                    run_start = slot
                run += 1
                if run == n:
                    return run_start
                if first == 0:  # past the end marker every slot is free
                    return run_start if len(data) // 32 - run_start >= n else None
            else:
                run = 0
        return None

    def _grow_root(self) -> None:
        clusters = self.chain(self.root_cluster)
        new = self._allocate(1)[0]
        self._write(self._cluster_pos(new), b"\0" * self.cluster_size)
        self._set(clusters[-1], new)
        self._flush_fat()

    def _new_entry_slots(self, name: str, short: bytes, first: int, size: int) -> None:
        needs_lfn = exact_short_name(name) != short
        units = name.encode("utf-16-le")
        n_lfn = (len(units) // 2 + 12) // 13 if needs_lfn else 0
        start = self._free_run(n_lfn + 1)
        if start is None:
            self._grow_root()
            start = self._free_run(n_lfn + 1)
            assert start is not None
        clusters, data = self._dir_slots()
        chars = [units[i:i + 2] for i in range(0, len(units), 2)] + [b"\0\0"]
        chars += [b"\xff\xff"] * (n_lfn * 13 - len(chars))
        check = lfn_checksum(short)
        for i in range(n_lfn):  # stored last piece first
            seq = n_lfn - i
            piece = b"".join(chars[(seq - 1) * 13:seq * 13])
            e = bytes([seq | (0x40 if i == 0 else 0)]) + piece[:10] + bytes([ATTR_LFN, 0, check]) \
                + piece[10:22] + b"\0\0" + piece[22:26]
            self._write(self._slot_pos(clusters, start + i), e)
        self._write(self._slot_pos(clusters, start + n_lfn), self._short_entry(short, first, size))
        after = start + n_lfn + 1
        # Slots we took may have been past the end marker; keep the marker after them.
        if after < len(data) // 32 and data[after * 32] != 0 and data[(start + n_lfn) * 32] == 0:
            self._write(self._slot_pos(clusters, after), b"\0")

    @staticmethod
    def _short_entry(short: bytes, first: int, size: int, created: bytes | None = None) -> bytes:
        t, d = _dos_datetime()
        crt = created if created is not None else struct.pack("<BHHH", 0, t, d, d)
        return short + bytes([ATTR_ARCHIVE, 0]) + crt + struct.pack("<HHHHI", first >> 16, t, d, first & 0xFFFF, size)

    def write_file(self, name: str, data: bytes) -> None:
        """Create or replace a root-directory file; the old contents are zeroed before being freed."""
        existing = self.find(name)
        if existing is not None and existing.attr & ATTR_DIR:
            raise BadInput(f"{name} is a folder on the boot partition")
        n = -(-len(data) // self.cluster_size)
        new = self._allocate(n) if n else []
        for i, c in enumerate(new):
            self._write(self._cluster_pos(c), data[i * self.cluster_size:(i + 1) * self.cluster_size]
                        .ljust(self.cluster_size, b"\0"))
        self._flush_fat()
        self._sync()  # data and chain are durable before any entry points at them
        first = new[0] if new else 0
        if existing is None:
            self._new_entry_slots(name, self._unique_short(name), first, len(data))
        else:
            clusters, raw = self._dir_slots()
            slot = existing.slots[-1]
            created = raw[slot * 32 + 13:slot * 32 + 20]
            self._write(self._slot_pos(clusters, slot),
                        self._short_entry(existing.short_name, first, len(data), created))
            self._sync()
            self._wipe_and_free(existing.cluster)
        self._sync()

    def delete_file(self, name: str) -> None:
        """Remove a root-directory file, zeroing its contents first."""
        e = self.find(name)
        if e is None:
            raise BadInput(f"{name} is not on the boot partition")
        clusters, _ = self._dir_slots()
        for slot in e.slots:
            self._write(self._slot_pos(clusters, slot), b"\xe5")
        self._wipe_and_free(e.cluster)
        self._sync()

    def _wipe_and_free(self, first: int) -> None:
        if first < 2:
            return
        old = self.chain(first)
        for c in old:
            self._write(self._cluster_pos(c), b"\0" * self.cluster_size)
        for c in old:
            self._set(c, FREE)
        self._flush_fat()

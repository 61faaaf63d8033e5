"""`joyprov flash`: write a raw or .xz image to a block device or a file, fsync, verify by read-back.

The image is hashed (sha256) as it is written; `--verify` drops the target's pages from the cache
(fsync + POSIX_FADV_DONTNEED) and reads the written range back from the device, so a card that
silently drops writes (a fake-capacity SD card, a failing reader) is caught here, not in the mall.
"""

from __future__ import annotations

import hashlib
import lzma
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from provisioning.blockdev import Target, check_target
from provisioning.errors import BadInput, Refused, TargetIOError, VerifyFailed
from provisioning.progress import Progress

CHUNK = 4 << 20  # 4 MiB: large enough for full-speed SD writes, small enough for a smooth bar
XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass
class FlashResult:
    """What was written and, with --verify, what was read back."""

    image: str
    target: str
    bytes_written: int
    sha256: str
    verified: bool


def _open_image(path: Path) -> tuple[BinaryIO, BinaryIO, int]:
    """(decompressed stream, raw file for progress, raw size)."""
    try:
        raw = open(path, "rb")
    except FileNotFoundError as err:
        raise BadInput(f"image {path} does not exist") from err
    except OSError as err:
        raise BadInput(f"image {path} cannot be read: {err.strerror}") from err
    size = os.fstat(raw.fileno()).st_size
    if size == 0:
        raw.close()
        raise BadInput(f"image {path} is empty")
    if raw.read(len(XZ_MAGIC)) == XZ_MAGIC:
        raw.seek(0)
        return lzma.LZMAFile(raw), raw, size  # type: ignore[return-value]
    raw.seek(0)
    return raw, raw, size


def _chunks(stream: BinaryIO, image: Path) -> Iterator[bytes]:
    while True:
        try:
            block = stream.read(CHUNK)
        except (lzma.LZMAError, EOFError) as err:
            raise BadInput(f"image {image} is a damaged .xz file: {err}") from err
        if not block:
            return
        yield block


def _drop_cache(fd: int) -> None:
    # Without this a read-back would come from the page cache and prove nothing.
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


def flash(image: Path, target_path: Path, *, verify: bool = False, force: bool = False,
          progress: bool = True) -> FlashResult:
    """Write `image` to `target_path`; raise Refused/BadInput/TargetIOError/VerifyFailed."""
    target = check_target(target_path, force=force)
    try:
        if target.kind != "new" and os.path.samefile(image, target_path):
            raise Refused(f"image and target are the same file: {image}")
    except FileNotFoundError:
        pass
    stream, raw, raw_size = _open_image(image)
    with raw:
        compressed = stream is not raw
        if not compressed and target.kind == "block" and target.size is not None and raw_size > target.size:
            raise Refused(f"image {image} ({raw_size} bytes) is larger than {target_path} ({target.size} bytes)")
        fd = _open_target(target)
        try:
            digest, written = _write(stream, raw, raw_size, fd, target, image, progress)
            try:
                os.fsync(fd)
            except OSError as err:
                raise TargetIOError(f"flushing {target_path} failed: {err.strerror}") from err
            _drop_cache(fd)
        finally:
            os.close(fd)
    verified = False
    if verify:
        back = read_back_sha256(target_path, written, progress=progress)
        if back != digest:
            raise VerifyFailed(f"verification failed: wrote sha256 {digest} but {target_path} reads back "
                               f"{back}. The card or reader may be failing: try another card or reader")
        verified = True
    return FlashResult(image=str(image), target=str(target_path), bytes_written=written,
                       sha256=digest, verified=verified)


def _open_target(target: Target) -> int:
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    if target.kind == "block":
        # O_EXCL on a block device fails with EBUSY while the kernel has it mounted: a second guard.
        flags |= os.O_EXCL
    else:
        flags |= os.O_CREAT
    try:
        return os.open(target.path, flags, 0o644)
    except OSError as err:
        hint = " (run as root or add yourself to the 'disk' group)" if err.errno == 13 else ""
        raise TargetIOError(f"cannot open {target.path} for writing: {err.strerror}{hint}") from err


def _write(stream: BinaryIO, raw: BinaryIO, raw_size: int, fd: int, target: Target, image: Path,
           progress: bool) -> tuple[str, int]:
    h = hashlib.sha256()
    bar = Progress("writing", raw_size if stream is raw else None, enabled=progress)
    written = 0
    for block in _chunks(stream, image):
        if target.kind == "block" and target.size is not None and written + len(block) > target.size:
            raise Refused(f"image {image} does not fit on {target.path} ({target.size} bytes)")
        h.update(block)
        view = memoryview(block)
        while view:
            try:
                n = os.write(fd, view)
            except OSError as err:
                raise TargetIOError(f"writing {target.path} failed at byte {written}: {err.strerror}") from err
            view = view[n:]
            written += n
        if stream is raw:
            bar.update(written)
        else:  # .xz: the decompressed size is unknown up front; the compressed position tells
            bar.update(written, fraction=raw.tell() / raw_size)
    bar.finish()
    if target.kind != "block":
        os.ftruncate(fd, written)  # an older, longer file at the target must not keep its tail
    return h.hexdigest(), written


def read_back_sha256(path: Path, length: int, *, progress: bool = True) -> str:
    """sha256 of the first `length` bytes of `path`, read past the page cache where possible."""
    h = hashlib.sha256()
    bar = Progress("verifying", length, enabled=progress)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise TargetIOError(f"cannot open {path} to verify: {err.strerror}") from err
    try:
        _drop_cache(fd)
        done = 0
        while done < length:
            block = os.read(fd, min(CHUNK, length - done))
            if not block:
                raise VerifyFailed(f"{path} ended after {done} of {length} bytes while verifying")
            h.update(block)
            done += len(block)
            bar.update(done)
    except OSError as err:
        raise TargetIOError(f"reading {path} back failed: {err.strerror}") from err
    finally:
        os.close(fd)
    bar.finish()
    return h.hexdigest()

"""Signed bundle install on the device: verify, refuse downgrades, install atomically, roll back.

Layout under the data directory (`--root`)::

    bundles/<kind>/versions/<version>/…   the installed files of each kept version
    bundles/<kind>/current  -> versions/<v>   symlink, switched with one rename (atomic)
    bundles/<kind>/previous -> versions/<v>   what `joyedge bundle rollback` goes back to
    bundles/<kind>/state.json                 {"highest": "<v>"}: anti-rollback floor
    bundles/last.json                         {"kind": "<kind>"}: what rollback acts on by default

Install: the signature over the manifest is checked with the pinned public key before anything
is written; every payload file is streamed into a staging folder while its sha256 and size are
checked against the manifest (no member outside the manifest, none missing, no links); a config
bundle must also pass `device.config` validation. Only then is the staging folder renamed into
`versions/`, `previous` pointed at the old current and `current` at the new one. A crash at any
point leaves the old `current` in force. The anti-rollback floor only rises: a bundle not newer
than the highest ever installed for its kind is refused, even after a local rollback (which a
technician does on purpose, with access to the device, and is allowed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from api.bundle import (
    CONFIG_FILE,
    KINDS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    PAYLOAD,
    SIGNATURE,
    SIGNATURE_SIZE,
    BundleFormatError,
    Manifest,
    parse_version,
)
from device.errors import DeviceError

DEFAULT_PUBKEY = Path("/etc/joyedge/bundle.pub")
CHUNK = 1 << 20


class BundleError(DeviceError):
    """A bundle was refused (bad signature, tampered, downgrade) or could not be installed."""


@dataclass
class InstallResult:
    """What `install` did."""

    kind: str
    version: str
    previous: str | None
    path: str


def load_public_key(path: Path):
    """The pinned Ed25519 public key (PEM) at `path`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError as err:
        raise BundleError(f"pinned public key {path} does not exist: install the fleet's bundle.pub "
                          f"there or pass --pubkey FILE") from err
    except (OSError, ValueError) as err:
        raise BundleError(f"{path} is not a PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path} is not an Ed25519 public key")
    return key


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _point(link: Path, target: str) -> None:
    """Make `link` a symlink to `target` with one rename, so readers see old or new, never neither."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _member_bytes(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    m = tar.next()
    if m is None or m.name != name or not m.isfile() or m.size > limit:
        raise BundleError(f"not a JoyEdge bundle: expected {name} next in the archive")
    f = tar.extractfile(m)
    assert f is not None
    return f.read()


def read_manifest(tar: tarfile.TarFile, public_key) -> Manifest:
    """Check the signature over the manifest with the pinned key, then decode it."""
    from cryptography.exceptions import InvalidSignature

    manifest_bytes = _member_bytes(tar, MANIFEST, MAX_MANIFEST_BYTES)
    signature = _member_bytes(tar, SIGNATURE, SIGNATURE_SIZE)
    try:
        public_key.verify(signature, manifest_bytes)
    except InvalidSignature as err:
        raise BundleError("bundle signature does not verify with the pinned key: the bundle was altered "
                          "or signed with another key; it was not installed") from err
    try:
        return Manifest.from_bytes(manifest_bytes)
    except BundleFormatError as err:
        raise BundleError(f"bundle manifest is invalid: {err}") from err


class BundleStore:
    """The bundles installed under one device data directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / "bundles"

    def _kind_dir(self, kind: str) -> Path:
        return self.base / kind

    def current(self, kind: str) -> str | None:
        """The version in force for `kind`, or None."""
        link = self._kind_dir(kind) / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def previous(self, kind: str) -> str | None:
        """The version a rollback would return to, or None."""
        link = self._kind_dir(kind) / "previous"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def highest(self, kind: str) -> str | None:
        """The anti-rollback floor: the highest version ever installed for `kind`."""
        versions = [v for v in (self._state(kind).get("highest"), self.current(kind)) if v]
        return max(versions, key=parse_version) if versions else None

    def path(self, kind: str) -> Path:
        """Where the files of the current bundle of `kind` are (models dir, config file's folder)."""
        return self._kind_dir(kind) / "current"

    def _state(self, kind: str) -> dict:
        try:
            return json.loads((self._kind_dir(kind) / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise BundleError(f"{self._kind_dir(kind) / 'state.json'} is damaged ({err}): "
                              "restore it or set its highest version by hand") from err

    def install(self, bundle: Path, public_key) -> InstallResult:
        """Verify and install a bundle file; BundleError says why one was refused."""
        try:
            with tarfile.open(bundle, "r:") as tar:
                manifest = read_manifest(tar, public_key)
                floor = self.highest(manifest.kind)
                if floor is not None and parse_version(manifest.version) <= parse_version(floor):
                    raise BundleError(
                        f"refusing {manifest.kind} bundle {manifest.version}: not newer than {floor}, the "
                        f"highest installed (anti-rollback). Build it with a higher --version, or use "
                        f"`joyedge bundle rollback` to go back to the kept previous bundle")
                kind_dir = self._kind_dir(manifest.kind)
                (kind_dir / "versions").mkdir(parents=True, exist_ok=True)
                staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=kind_dir))
                try:
                    self._extract(tar, manifest, staging)
                    if manifest.kind == "config":
                        self._validate_config(staging / CONFIG_FILE)
                    final = kind_dir / "versions" / manifest.version
                    if final.exists():  # left by a crash between rename and switch; never current
                        shutil.rmtree(final)
                    os.rename(staging, final)
                    _fsync_dir(final.parent)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
        except FileNotFoundError as err:
            raise BundleError(f"bundle {bundle} does not exist") from err
        except tarfile.TarError as err:
            raise BundleError(f"{bundle} is not a bundle (tar): {err}") from err
        old = self.current(manifest.kind)
        if old is not None:
            _point(kind_dir / "previous", f"versions/{old}")
        _point(kind_dir / "current", f"versions/{manifest.version}")
        _atomic_write(kind_dir / "state.json", json.dumps({"highest": manifest.version}).encode())
        _atomic_write(self.base / "last.json", json.dumps({"kind": manifest.kind}).encode())
        self._prune(manifest.kind)
        return InstallResult(manifest.kind, manifest.version, old, str(kind_dir / "current"))

    def _extract(self, tar: tarfile.TarFile, manifest: Manifest, staging: Path) -> None:
        expected = {PAYLOAD + f.path: f for f in manifest.files}
        done: set[str] = set()
        while (member := tar.next()) is not None:
            entry = expected.get(member.name)
            if entry is None or member.name in done:
                raise BundleError(f"bundle member {member.name!r} is not in the signed manifest: refused")
            if not member.isfile() or member.size != entry.size:
                raise BundleError(f"bundle member {member.name!r} is not the file the manifest describes")
            src = tar.extractfile(member)
            assert src is not None
            dest = staging / entry.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha256()
            with open(dest, "wb") as out:
                while block := src.read(CHUNK):
                    h.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != entry.sha256:
                raise BundleError(f"{entry.path}: sha256 differs from the signed manifest: the bundle was "
                                  "altered; it was not installed")
            done.add(member.name)
        missing = sorted(set(expected) - done)
        if missing:
            raise BundleError(f"bundle is incomplete: {', '.join(missing)} missing")

    @staticmethod
    def _validate_config(path: Path) -> None:
        from device.config import load_config

        try:
            load_config(path)
        except DeviceError as err:
            raise BundleError(f"config bundle's {CONFIG_FILE} is not a valid device config: {err}") from err

    def _prune(self, kind: str) -> None:
        keep = {self.current(kind), self.previous(kind)}
        for d in (self._kind_dir(kind) / "versions").iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)

    def rollback(self, kind: str | None = None) -> tuple[str, str, str]:
        """Swap current and previous for `kind` (default: the kind installed last); (kind, from, to)."""
        if kind is None:
            try:
                kind = json.loads((self.base / "last.json").read_text(encoding="utf-8"))["kind"]
            except (OSError, ValueError, KeyError) as err:
                raise BundleError(f"no bundle installed under {self.root}: nothing to roll back") from err
        if kind not in KINDS:
            raise BundleError(f"kind {kind!r}: one of {', '.join(KINDS)}")
        cur, prev = self.current(kind), self.previous(kind)
        if cur is None or prev is None:
            raise BundleError(f"no previous {kind} bundle is kept under {self.root}: nothing to roll back to")
        kind_dir = self._kind_dir(kind)
        _point(kind_dir / "current", f"versions/{prev}")
        _point(kind_dir / "previous", f"versions/{cur}")
        return kind, cur, prev

    def status(self) -> list[dict]:
        """One row per kind: current, previous, highest."""
        return [{"kind": k, "current": self.current(k), "previous": self.previous(k),
                 "highest": self.highest(k), "path": str(self.path(k))} for k in KINDS]

"""`joyprov bundle keygen | build`: Ed25519 signing keys and signed model/config bundles (api/bundle.py)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from api.bundle import (
    CONFIG_FILE,
    MANIFEST,
    PAYLOAD,
    SIGNATURE,
    BundleFormatError,
    FileEntry,
    Manifest,
    check_path,
)
from provisioning.errors import BadInput, Refused, TargetIOError
from provisioning.progress import Progress

KEY_NAME = "bundle.key"
PUB_NAME = "bundle.pub"


def keygen(directory: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 pair: DIR/bundle.key (PKCS#8 PEM, 0600) and DIR/bundle.pub (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path, pub_path = directory / KEY_NAME, directory / PUB_NAME
    for p in (key_path, pub_path):
        if p.exists():
            raise Refused(f"{p} already exists: a fleet keeps one signing key; move it away to make a new one")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    # O_EXCL + 0600 from the start: the key is never readable by others, not even for a moment.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(pub)
    return key_path, pub_path


def load_private_key(path: Path):
    """The Ed25519 private key at `path` (BadInput when missing, not a key, or readable by others)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        if path.stat().st_mode & 0o077:
            raise Refused(f"signing key {path} is readable by others: chmod 600 {path}")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as err:
        raise BadInput(f"signing key {path} does not exist: `joyprov bundle keygen DIR` makes one") from err
    except (ValueError, TypeError) as err:
        raise BadInput(f"{path} is not a PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path} is not an Ed25519 key")
    return key


def _sources(models: Path | None, config: Path | None) -> tuple[str, list[tuple[str, Path]]]:
    if (models is None) == (config is None):
        raise BadInput("give exactly one of --models DIR or --config FILE")
    if config is not None:
        if not config.is_file():
            raise BadInput(f"config file {config} does not exist")
        return "config", [(CONFIG_FILE, config)]
    assert models is not None
    if not models.is_dir():
        raise BadInput(f"models directory {models} does not exist")
    files = sorted(p for p in models.rglob("*") if p.is_file())
    if not files:
        raise BadInput(f"models directory {models} has no files")
    out = []
    for p in files:
        rel = p.relative_to(models).as_posix()
        try:
            out.append((check_path(rel), p))
        except BundleFormatError as err:
            raise BadInput(f"{p}: {err}") from err
    return "models", out


def _sha256(path: Path, bar: Progress, done: int) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            done += len(block)
            bar.update(done)
    return h.hexdigest(), done


def build(*, models: Path | None, config: Path | None, version: str, key: Path, out: Path,
          progress: bool = True) -> Manifest:
    """Hash the files, sign the manifest, write the tar atomically (OUT.tmp then rename)."""
    kind, files = _sources(models, config)
    signer = load_private_key(key)
    total = sum(p.stat().st_size for _, p in files)
    bar = Progress("hashing", total, enabled=progress)
    entries, done = [], 0
    for rel, p in files:
        digest, done = _sha256(p, bar, done)
        entries.append(FileEntry(rel, digest, p.stat().st_size))
    bar.finish()
    try:
        manifest = Manifest(kind=kind, version=version, files=tuple(entries))
        manifest_bytes = manifest.to_bytes()
    except BundleFormatError as err:
        raise BadInput(str(err)) from err
    signature = signer.sign(manifest_bytes)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in ((MANIFEST, manifest_bytes), (SIGNATURE, signature)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
            for (rel, p), entry in zip(files, entries, strict=True):
                info = tarfile.TarInfo(PAYLOAD + rel)
                info.size, info.mode = entry.size, 0o644
                with open(p, "rb") as f:
                    tar.addfile(info, f)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise TargetIOError(f"writing {out} failed: {err.strerror}") from err
    return manifest

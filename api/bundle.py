"""The signed bundle format: the contract between `joyprov bundle build` and `joyedge bundle install`.

A bundle is an uncompressed POSIX tar with exactly these members, in this order::

    manifest.json        the manifest below (UTF-8 JSON, canonical: sorted keys, no spaces)
    manifest.sig         the raw 64-byte Ed25519 signature over manifest.json's exact bytes
    payload/<path>       one regular file per manifest entry

Manifest::

    {"format": 1, "kind": "models" | "config", "version": "1.4.0",
     "files": [{"path": "face_detection_short_range.tflite", "sha256": "…", "size": 229746}, …]}

The signature covers the manifest, and the manifest covers every payload byte by sha256, so one
check of the signature plus one hash per file proves the whole bundle. Versions are dotted
non-negative integers ("1", "1.4", "2024.11.3") compared numerically; anti-rollback compares them
per kind. Pure Python (standard library only): signing and verification live with each side.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

FORMAT = 1
KINDS = ("models", "config")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PAYLOAD = "payload/"
SIGNATURE_SIZE = 64
# A config bundle carries exactly this one file; the device validates it before installing.
CONFIG_FILE = "device.toml"
MAX_MANIFEST_BYTES = 1 << 20

_VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")
# A payload path: relative, forward slashes, no empty, '.' or '..' parts, no control characters.
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")


class BundleFormatError(ValueError):
    """The bundle or its manifest is malformed; the message says what is wrong."""


def parse_version(text: str) -> tuple[int, ...]:
    """'1.4.0' → (1, 4, 0), with trailing zeros dropped so '1.4' == '1.4.0'."""
    if not isinstance(text, str) or not _VERSION.match(text):
        raise BundleFormatError(f"version {text!r}: use dotted numbers, e.g. 1.4.0")
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_path(path: str) -> str:
    """Refuse absolute paths, '..', hidden or odd names: a payload path never leaves its directory."""
    parts = path.split("/") if isinstance(path, str) else [""]
    if not path or len(path) > 255 or not all(_PART.match(p) for p in parts):
        raise BundleFormatError(f"file path {path!r}: relative, plain names (letters, digits, _.+-) only")
    return path


@dataclass(frozen=True)
class FileEntry:
    """One payload file: where it goes, its sha256 and size."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """What a bundle contains and which version of its kind it is."""

    kind: str
    version: str
    files: tuple[FileEntry, ...]

    def validate(self) -> Manifest:
        """Raise BundleFormatError naming the first bad field; return self when all is well."""
        if self.kind not in KINDS:
            raise BundleFormatError(f"kind {self.kind!r}: one of {', '.join(KINDS)}")
        parse_version(self.version)
        if not self.files:
            raise BundleFormatError("a bundle carries at least one file")
        seen: set[str] = set()
        for f in self.files:
            check_path(f.path)
            if f.path.lower() in seen:
                raise BundleFormatError(f"file {f.path!r} is listed twice")
            seen.add(f.path.lower())
            if not re.fullmatch(r"[0-9a-f]{64}", f.sha256):
                raise BundleFormatError(f"file {f.path!r}: sha256 must be 64 lowercase hex digits")
            if not isinstance(f.size, int) or f.size < 0:
                raise BundleFormatError(f"file {f.path!r}: size must be a non-negative integer")
        if self.kind == "config" and [f.path for f in self.files] != [CONFIG_FILE]:
            raise BundleFormatError(f"a config bundle carries exactly one file, {CONFIG_FILE}")
        return self

    def to_bytes(self) -> bytes:
        """The canonical encoding that is signed."""
        self.validate()
        doc = {"format": FORMAT, "kind": self.kind, "version": self.version,
               "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files]}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Decode and validate; unknown keys and formats are errors."""
        if len(data) > MAX_MANIFEST_BYTES:
            raise BundleFormatError("manifest too large")
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleFormatError(f"manifest is not JSON: {err}") from err
        if not isinstance(doc, dict) or set(doc) != {"format", "kind", "version", "files"}:
            raise BundleFormatError("manifest must have exactly format, kind, version, files")
        if doc["format"] != FORMAT:
            raise BundleFormatError(f"manifest format {doc['format']!r}: this reader understands {FORMAT}")
        files = doc["files"]
        if not isinstance(files, list) or not all(
                isinstance(f, dict) and set(f) == {"path", "sha256", "size"} for f in files):
            raise BundleFormatError("manifest files: a list of {path, sha256, size}")
        return cls(kind=doc["kind"], version=doc["version"],
                   files=tuple(FileEntry(f["path"], f["sha256"], f["size"]) for f in files)).validate()

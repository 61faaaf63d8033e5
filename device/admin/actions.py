"""Admin actions that change the device: config set (validated, atomic) and factory reset.

Config set edits the device file (`--config`), never the profile: each setting is a dotted key and a
TOML value; the edited file must pass `device.config.load_config` (strict models: an unknown key or
a bad value is refused with the key named) before it replaces the old one by rename. The old file is
kept as `<file>.prev`. Comments in the device file are not kept (the file is rewritten from data).

Factory reset crypto-erases the biometric data: the wrapped data key goes first
(`TemplateCipher.destroy`), so every template and sealed outbox row is noise even if a copy of the
database survives on the card's flash; then the replica files are removed and a fresh, empty replica
is created (the next sync is a cold sync). The enrollment identity is kept: the device stays
registered and reachable; decommissioning is `joyedge-cloud ca revoke --device ID`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from api.pki import write_private
from device.config import DeviceConfig, load_config
from device.errors import ConfigError, DeviceError


class AdminError(DeviceError):
    """An admin action cannot be done (bad request or a failed step)."""


def parse_value(key: str, text: str) -> Any:
    """A setting's value as TOML (`0.9`, `true`, `"x"`, `[1, 2]`); a bare word is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text and "\n" not in text and '"' not in text:
            return text
        raise AdminError(f"{key}: {text!r} is not a TOML value (quote text: \"...\")") from None


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    if not all(parts):
        raise AdminError(f"{key!r} is not a dotted config key (like identity.match_threshold)")
    node = data
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise AdminError(f"{key}: {p} is a value, not a table")
        node = child
    node[parts[-1]] = value


def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    raise AdminError(f"cannot write a {type(v).__name__} into TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text of nested dicts, lists of scalars and arrays of tables (what device files hold)."""
    lines: list[str] = []

    def table(prefix: str, t: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in t.items() if not isinstance(v, dict) and not _is_table_array(v)}
        if prefix and (scalars or not t):
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {_toml_scalar(v)}" for k, v in scalars.items())
        for k, v in t.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                table(name, v)
            elif _is_table_array(v):
                for item in v:
                    lines.append(f"\n[[{name}]]")
                    lines.extend(f"{ik} = {_toml_scalar(iv)}" for ik, iv in item.items())

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def set_config(path: Path, settings: Sequence[tuple[str, str]]) -> DeviceConfig:
    """Apply `settings` to the device file at `path` if the result validates; the new config.

    AdminError (naming the key) when a setting is malformed or the result does not validate; the
    file is then untouched.
    """
    if not settings:
        raise AdminError("no settings given (KEY=VALUE ...)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise AdminError(f"cannot read the device config {path}: {err}") from err
    for key, text in settings:
        if key == "profile" or key.startswith("device.data_dir"):
            # The profile picks the whole hardware set and data_dir moves the replica and identity:
            # both are installation decisions, not something to change remotely.
            raise AdminError(f"{key}: cannot be changed over the admin API (reinstall or edit on the device)")
        _set(data, key, parse_value(key, text))
    text = dump_toml(data)
    tmp = path.with_name(f".{path.name}.check.toml")
    try:
        write_private(tmp, text.encode("utf-8"))
        cfg = load_config(tmp)
    except ConfigError as err:
        raise AdminError(str(err).replace(str(tmp), str(path))) from err
    finally:
        tmp.unlink(missing_ok=True)
    prev = path.with_name(path.name + ".prev")
    try:
        prev.write_bytes(path.read_bytes())
        write_private(path, text.encode("utf-8"), mode=path.stat().st_mode & 0o777)  # keeps the file's mode
    except OSError as err:
        raise AdminError(f"cannot write {path}: {err.strerror}") from err
    return cfg


def erase_replica(db_path: Path) -> int:
    """Remove the replica file and its WAL/SHM; the bytes removed."""
    removed = 0
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = db_path.with_name(db_path.name + suffix)
        try:
            removed += f.stat().st_size
            f.unlink()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise AdminError(f"cannot remove {f}: {err.strerror}") from err
    return removed

"""Acceptance: signed bundles. Built and signed by `joyprov bundle`, installed by `joyedge bundle`:
a tampered bundle and a downgrade are refused; a good one installs atomically and rolls back."""

from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest

from api.bundle import MANIFEST
from device.cli import main as joyedge
from provisioning.cli import main as joyprov


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    assert joyprov(["bundle", "keygen", str(d)]) == 0
    return d


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "device-data"


def _models(tmp_path: Path, tag: str) -> Path:
    d = tmp_path / f"models-{tag}"
    (d / "sub").mkdir(parents=True)
    (d / "detector.tflite").write_bytes(f"detector {tag}".encode() * 1000)
    (d / "sub" / "embedder.onnx").write_bytes(f"embedder {tag}".encode())
    return d


def _build(tmp_path: Path, keys: Path, version: str, tag: str | None = None) -> Path:
    out = tmp_path / f"models-{version}.bundle"
    assert joyprov(["bundle", "build", "--models", str(_models(tmp_path, tag or version)), "--version", version,
                    "--key", str(keys / "bundle.key"), "--out", str(out), "--quiet"]) == 0
    return out


def _install(bundle: Path, keys: Path, root: Path) -> int:
    return joyedge(["bundle", "install", str(bundle), "--pubkey", str(keys / "bundle.pub"), "--root", str(root)])


def _current(root: Path, kind: str = "models") -> Path:
    return root / "bundles" / kind / "current"


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bundle member by member, letting `change(name, data)` alter contents."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            data = change(m.name, data)
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dst


def test_keygen_makes_a_private_key_only_the_owner_reads_and_refuses_to_overwrite(keys, capsys):
    assert stat.S_IMODE((keys / "bundle.key").stat().st_mode) == 0o600
    assert (keys / "bundle.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    before = (keys / "bundle.key").read_bytes()
    assert joyprov(["bundle", "keygen", str(keys)]) == 4
    assert "already exists" in capsys.readouterr().err
    assert (keys / "bundle.key").read_bytes() == before


def test_good_bundle_installs_and_rolls_back(tmp_path, keys, root, capsys):
    """GIVEN 1.0 then 1.1 installed WHEN rolled back THEN 1.0's files are current; again → 1.1."""
    assert _install(_build(tmp_path, keys, "1.0"), keys, root) == 0
    assert (_current(root) / "detector.tflite").read_bytes().startswith(b"detector 1.0")
    assert _install(_build(tmp_path, keys, "1.1"), keys, root) == 0
    assert (_current(root) / "sub" / "embedder.onnx").read_bytes() == b"embedder 1.1"
    capsys.readouterr()
    assert joyedge(["bundle", "rollback", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kind": "models", "from": "1.1", "to": "1.0"}
    assert (_current(root) / "sub" / "embedder.onnx").read_bytes() == b"embedder 1.0"
    assert joyedge(["bundle", "status", "--root", str(root), "--json"]) == 0
    models = next(r for r in json.loads(capsys.readouterr().out) if r["kind"] == "models")
    assert (models["current"], models["previous"], models["highest"]) == ("1.0", "1.1", "1.1")
    # after a rollback the floor stays: the old bundle file cannot be installed "again" to get under it
    assert _install(tmp_path / "models-1.0.bundle", keys, root) == 2
    assert "not newer than 1.1" in capsys.readouterr().err
    assert joyedge(["bundle", "rollback", "--root", str(root)]) == 0
    assert (_current(root) / "sub" / "embedder.onnx").read_bytes() == b"embedder 1.1"


def test_downgrade_and_same_version_are_refused(tmp_path, keys, root, capsys):
    old = _build(tmp_path, keys, "2.4.1")
    assert _install(_build(tmp_path, keys, "2.10"), keys, root) == 0
    capsys.readouterr()
    assert _install(old, keys, root) == 2  # 2.4.1 < 2.10 numerically (not as text)
    err = capsys.readouterr().err
    assert "refusing models bundle 2.4.1: not newer than 2.10" in err and "anti-rollback" in err
    assert _install(_build(tmp_path, keys, "2.10.0", tag="again"), keys, root) == 2
    assert (_current(root) / "sub" / "embedder.onnx").read_bytes() == b"embedder 2.10"


def test_anti_rollback_floor_survives_a_lost_state_file(tmp_path, keys, root):
    assert _install(_build(tmp_path, keys, "3.0"), keys, root) == 0
    (root / "bundles" / "models" / "state.json").unlink()  # e.g. a crash right before it was written
    assert _install(_build(tmp_path, keys, "2.0"), keys, root) == 2


@pytest.mark.parametrize("how", ["payload byte", "manifest version", "extra member", "other key", "missing file"])
def test_tampered_bundles_are_refused_and_nothing_changes(tmp_path, keys, root, capsys, how):
    assert _install(_build(tmp_path, keys, "1.0"), keys, root) == 0
    good = _build(tmp_path, keys, "1.1")
    bad = tmp_path / "bad.bundle"
    if how == "payload byte":
        _rewrite(good, bad, lambda n, d: d[:-1] + bytes([d[-1] ^ 1]) if n.endswith("embedder.onnx") else d)
    elif how == "manifest version":
        _rewrite(good, bad, lambda n, d: d.replace(b'"1.1"', b'"9.9"') if n == MANIFEST else d)
    elif how == "extra member":
        bad.write_bytes(good.read_bytes())
        with tarfile.open(bad, "a") as t:
            info = tarfile.TarInfo("payload/../../evil.sh")
            info.size = 4
            t.addfile(info, io.BytesIO(b"boom"))
    elif how == "other key":
        other = tmp_path / "other-keys"
        assert joyprov(["bundle", "keygen", str(other)]) == 0
        assert joyprov(["bundle", "build", "--models", str(_models(tmp_path, "evil")), "--version", "5.0",
                        "--key", str(other / "bundle.key"), "--out", str(bad), "--quiet"]) == 0
    else:
        with tarfile.open(good) as tin, tarfile.open(bad, "w") as tout:
            for m in tin.getmembers():
                if not m.name.endswith("embedder.onnx"):
                    tout.addfile(m, tin.extractfile(m))
    capsys.readouterr()
    assert _install(bad, keys, root) == 2
    err = capsys.readouterr().err
    assert "joyedge: error:" in err and ("not installed" in err or "refused" in err or "incomplete" in err)
    assert (_current(root) / "sub" / "embedder.onnx").read_bytes() == b"embedder 1.0"
    assert not list((root / "bundles" / "models").glob(".staging-*"))
    assert sorted(p.name for p in (root / "bundles" / "models" / "versions").iterdir()) == ["1.0"]
    assert not (tmp_path / "evil.sh").exists() and not (root / "evil.sh").exists()


def test_config_bundle_is_validated_before_it_installs(tmp_path, keys, root, capsys):
    good = tmp_path / "device.toml"
    good.write_text('profile = "mirror"\n[device]\nid = "mirror-07"\n')
    bad = tmp_path / "bad" / "device.toml"
    bad.parent.mkdir()
    bad.write_text('profile = "mirror"\n[camera]\nfsp = 15\n')
    for src, version, out in ((good, "1", "good.bundle"), (bad, "2", "bad.bundle")):
        assert joyprov(["bundle", "build", "--config", str(src), "--version", version,
                        "--key", str(keys / "bundle.key"), "--out", str(tmp_path / out), "--quiet"]) == 0
    assert _install(tmp_path / "good.bundle", keys, root) == 0
    assert (_current(root, "config") / "device.toml").read_text() == good.read_text()
    capsys.readouterr()
    assert _install(tmp_path / "bad.bundle", keys, root) == 2
    assert "camera.fsp: unknown key" in capsys.readouterr().err
    assert (_current(root, "config") / "device.toml").read_text() == good.read_text()


def test_bad_inputs_say_what_to_do(tmp_path, keys, root, capsys):
    assert joyedge(["bundle", "install", str(tmp_path / "x.bundle"), "--pubkey", str(tmp_path / "nope.pub"),
                    "--root", str(root)]) == 2
    assert "--pubkey" in capsys.readouterr().err
    not_tar = tmp_path / "x.bundle"
    not_tar.write_bytes(b"hello")
    assert _install(not_tar, keys, root) == 2
    assert "not a bundle" in capsys.readouterr().err
    assert joyedge(["bundle", "rollback", "--root", str(root)]) == 2
    assert "nothing to roll back" in capsys.readouterr().err
    assert joyprov(["bundle", "build", "--models", str(_models(tmp_path, "v")), "--version", "1.x",
                    "--key", str(keys / "bundle.key"), "--out", str(tmp_path / "o.bundle")]) == 3
    assert "dotted numbers" in capsys.readouterr().err
    (keys / "bundle.key").chmod(0o644)
    assert joyprov(["bundle", "build", "--models", str(_models(tmp_path, "w")), "--version", "1",
                    "--key", str(keys / "bundle.key"), "--out", str(tmp_path / "o.bundle")]) == 4
    assert "chmod 600" in capsys.readouterr().err

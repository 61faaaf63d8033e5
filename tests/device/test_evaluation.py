"""`joyedge eval identify|calibrate|detect` on the shared photos, and bad input through the whole path."""

from __future__ import annotations

import io
import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.cli import main
from device.config import IdentityConfig
from device.errors import DeviceError
from device.eval_metrics import OpenSetScores, tar_at_far, threshold_at_rate
from device.evaluation import FaceEncoder, evaluate_identify, shared_distractors
from device.open_set import ImpostorTail


def _run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lfw(shared_data: Path) -> dict[str, list[Path]]:
    root = shared_data / "lfw_original_10id"
    return {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}


@pytest.fixture(scope="module")
def encoder():
    return FaceEncoder.from_store(accelerator="cpu")


def test_metrics_on_known_scores():
    assert threshold_at_rate(np.array([0.1, 0.2, 0.3, 0.9]), 0.25) > 0.3
    assert threshold_at_rate(np.array([0.1, 0.2, 0.3, 0.9]), 0.0) > 0.9
    assert tar_at_far(np.array([0.5, 0.95, 0.99]), np.array([0.1, 0.2, 0.3, 0.9]), 0.25) == 1.0
    assert tar_at_far(np.array([0.5, 0.95, 0.99]), np.array([0.1, 0.2, 0.3, 0.9]), 0.0) == pytest.approx(2 / 3)
    s = OpenSetScores(np.array([0.9, 0.8, 0.95]), np.array([True, True, False]), np.array([0.85, 0.1]))
    assert s.rank1() == pytest.approx(2 / 3)
    assert s.fnir_at_fpir(0.5) == pytest.approx(1 / 3)  # one false alarm allowed: only the wrong top-1 misses
    assert s.fnir_at_fpir(0.0) == pytest.approx(2 / 3)  # above 0.85: 0.8 is missed too
    assert s.fpir_at(0.86) == 0.0


def test_eval_identify_on_lfw_with_shared_distractors(capsys, shared_data, tmp_path):
    distractors = tmp_path / "distractors"
    distractors.mkdir()
    for p in shared_distractors(shared_data)[::3]:
        shutil.copy(p, distractors / f"{p.parent.name}_{p.name}")
    plot = tmp_path / "det.png"
    report = _run_json(capsys, ["eval", "identify", "--gallery", str(shared_data / "lfw_original_10id"),
                                "--distractors", str(distractors), "--enroll-per-id", "3", "--json",
                                "--plot", str(plot), "--accelerator", "cpu"])
    assert report["rank1"] >= 0.98
    assert set(report["tar_at_far"]) == {"1e-2", "1e-3", "1e-4"}
    assert report["tar_at_far"]["1e-2"] >= 0.9
    assert report["images"] == 100 + len(list(distractors.iterdir()))
    assert report["failures_to_detect"] == 0 and report["mated_probes"] == 70
    assert report["fnir_at_fpir_1pct"] is not None and report["fnir_at_fpir_1pct"] <= 0.1
    assert 0.5 < report["threshold"] < 1.0
    assert plot.stat().st_size > 1000 and Image.open(plot).format == "PNG"


def test_eval_calibrate_prints_thresholds(capsys, shared_data, tmp_path):
    gallery = tmp_path / "gallery"
    for person in ("Colin_Powell", "George_W_Bush", "Tony_Blair"):
        shutil.copytree(shared_data / "lfw_original_10id" / person, gallery / person)
    result = _run_json(capsys, ["eval", "calibrate", "--gallery", str(gallery), "--distractors",
                                str(shared_data / "dlib_johns_5id"), "--enroll-per-id", "3", "--json",
                                "--accelerator", "cpu"])
    assert 0.5 < result["match_threshold"] <= result["payment_threshold"] < 1.0
    assert "[identity]" in result["config"] and result["nonmated_probes"] == 55
    # 1:1 impostor pairs: 30 gallery photos among themselves (435 - 3 * 45 same-person) and x 55 distractors.
    assert result["impostor_pairs"] == 300 + 30 * 55
    # The printed TOML is what a technician pastes: the strict config model takes it as it is.
    identity = IdentityConfig(**tomllib.loads(result["config"])["identity"])
    assert identity.impostor_tail.model_dump() == result["impostor_tail"]
    tail = ImpostorTail(**result["impostor_tail"])
    assert 0.85 < tail.u < 0.95 and tail.p_u == pytest.approx(0.02, abs=0.001)
    rows = result["gallery_thresholds"]
    assert [r["templates"] for r in rows] == [10, 100, 1_000, 10_000, 100_000]
    for small, large in zip(rows[:-1], rows[1:], strict=True):
        assert small["greet"] <= large["greet"] and small["tar_greet"] >= large["tar_greet"]
    for r in rows:
        assert result["match_threshold"] <= r["greet"] <= r["payment"] <= 1.0
        if result["match_threshold"] < r["greet"] < 1.0:  # set by the tail: N * FAR = FPIR (greet rounded)
            assert r["templates"] * tail.far(r["greet"]) == pytest.approx(IdentityConfig().greeting_fpir, rel=0.01)
    assert rows[-1]["greet"] > rows[0]["greet"] and rows[0]["tar_greet"] > 0.5


def test_eval_calibrate_with_too_few_pairs_says_so_and_keeps_the_thresholds(capsys, shared_data, tmp_path):
    """GIVEN two people and five never-enrolled photos (200 impostor pairs, 1,500+ needed for the tail)
    WHEN calibrating (human-readable output) THEN the thresholds are printed, the note carries the tail
    fit's own refusal, and the pasteable config has no [identity.impostor_tail] table."""
    gallery, distractors = tmp_path / "gallery", tmp_path / "distractors"
    for person in ("Hugo_Chavez", "Vladimir_Putin"):
        shutil.copytree(shared_data / "lfw_original_10id" / person, gallery / person)
    distractors.mkdir()
    for p in sorted((shared_data / "dlib_johns_5id" / "John_Simm").glob("*.jpg"))[:5]:
        shutil.copy(p, distractors / p.name)
    assert main(["eval", "calibrate", "--gallery", str(gallery), "--distractors", str(distractors),
                 "--enroll-per-id", "3", "--accelerator", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "impostor_pairs: 200\n" in out and "impostor_tail: None\n" in out
    assert "no impostor tail, so no gallery thresholds: 200 impostor pairs are too few" in out
    assert "gallery_thresholds" not in out and "[identity.impostor_tail]" not in out
    pasted = tomllib.loads(out.split("paste into device.toml:\n", 1)[1])
    assert set(pasted) == {"identity"} and 0.5 < pasted["identity"]["match_threshold"] < 1.0


def test_eval_detect_on_dlib_faces_and_no_face(capsys, shared_data):
    faces = shared_data / "multi_face" / "dlib_faces"
    report = _run_json(capsys, ["eval", "detect", "--images", str(faces), "--boxes", str(faces / "training.xml"),
                                "--boxes", str(faces / "testing.xml"), "--no-face", str(shared_data / "no_face"),
                                "--json", "--accelerator", "cpu"])
    assert report["faces"] == 21 and report["recall"] >= 0.95
    assert report["no_face_detections"] == 0 and report["no_face_images"] == 7


def _bad_inputs(lfw_photo: Path, folder: Path) -> dict[str, bool]:
    """File name → True when it should decode (and be processed), False when it must be refused."""
    data = lfw_photo.read_bytes()
    img = Image.open(lfw_photo)
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    Image.new("RGB", (1, 1), (128, 128, 128)).save(folder / "tiny.png")
    img.convert("L").save(folder / "gray.jpg")
    img.convert("RGBA").save(folder / "rgba.png")
    img.convert("CMYK").save(folder / "cmyk.jpg")
    buf = io.BytesIO()
    img.save(buf, format="WEBP")
    (folder / "webp_named.jpg").write_bytes(buf.getvalue())
    # A 20000x20000 image: a 1-bit PNG keeps the file small, the decoder must still refuse it.
    Image.new("1", (20000, 20000)).save(folder / "huge.png")
    return {"truncated.jpg": False, "empty.jpg": False, "tiny.png": True, "gray.jpg": True, "rgba.png": True,
            "cmyk.jpg": True, "webp_named.jpg": True, "huge.png": False}


def test_bad_input_is_processed_or_refused_by_name(encoder, lfw, tmp_path):
    expected = _bad_inputs(lfw["Hugo_Chavez"][0], tmp_path)
    for name, decodes in expected.items():
        path = tmp_path / name
        if decodes:
            emb = encoder.encode(path)
            assert emb is None if name == "tiny.png" else emb.shape == (128,), name
        else:
            with pytest.raises(DeviceError, match=name):
                encoder.encode(path)


def test_bad_files_in_a_gallery_are_counted_not_fatal(encoder, lfw, tmp_path):
    gallery = tmp_path / "gallery"
    for person in ("Hugo_Chavez", "Jacques_Chirac"):
        (gallery / person).mkdir(parents=True)
        for p in lfw[person][:5]:
            shutil.copy(p, gallery / person / p.name)
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_inputs(lfw["Hugo_Chavez"][0], bad)
    for f in bad.iterdir():
        shutil.copy(f, gallery / "Jacques_Chirac" / f"zz_{f.name}")
    run = evaluate_identify(encoder, gallery, 3, distractors=None)
    assert len(run.unreadable) == 3 and all("zz_" in u for u in run.unreadable)
    assert run.report()["rank1"] is not None and run.images == 18


def test_identify_refuses_overlapping_distractors(encoder, shared_data):
    with pytest.raises(DeviceError, match="never-enrolled"):
        evaluate_identify(encoder, shared_data / "dlib_johns_5id", 3, shared_data / "dlib_johns_5id")

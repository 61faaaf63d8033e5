"""`joyedge eval identify|calibrate|detect` on the shared photos, and bad input through the whole path."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from device.cli import main
from device.errors import DeviceError
from device.eval_metrics import OpenSetScores, tar_at_far, threshold_at_rate
from device.evaluation import FaceEncoder, evaluate_identify, shared_distractors


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

"""FaceEmbedder's backends: ONNX Runtime (default) and dlib (reference, fallback); flip averaging; batches."""

from __future__ import annotations

import numpy as np
import pytest

from inference.embedder import EMBEDDING_MODEL, SHAPE_MODEL, FaceEmbedder
from inference.errors import InferenceError
from inference.image import load_image


@pytest.fixture(scope="module")
def lfw_chips(detector, embedder, lfw) -> dict[str, list[np.ndarray]]:
    """Aligned chips of every LFW photo, by identity (largest detected face)."""
    chips: dict[str, list[np.ndarray]] = {}
    for name, paths in lfw.items():
        for path in paths:
            img = load_image(path)
            det = max(detector.detect(img), key=lambda d: d.width)
            chips.setdefault(name, []).append(embedder.align(img, det.box))
    return chips


def _rank1_predictions(embed, lfw_chips) -> tuple[list[str], list[str]]:
    """3 enrolled per person (mean template), the other 7 probed: (truth, predicted) per probe."""
    names = sorted(lfw_chips)
    templates = np.stack([embed(lfw_chips[n][:3]).mean(axis=0) for n in names])
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    truth, predicted = [], []
    for name in names:
        for emb in embed(lfw_chips[name][3:]):
            truth.append(name)
            predicted.append(names[int(np.argmax(templates @ emb))])
    return truth, predicted


def test_rank1_identical_to_dlib_on_lfw(model_store, lfw_chips):
    """GIVEN lfw_original_10id, 3 enrolled and 7 probes per person THEN the ONNX and dlib backends
    predict the same identity for every probe, and rank-1 is at least 0.98."""
    onnx = FaceEmbedder.from_store(model_store, backend="onnx")
    ref = FaceEmbedder.from_store(model_store, backend="dlib")
    assert (onnx.backend, ref.backend) == ("onnx", "dlib")
    truth, pred_onnx = _rank1_predictions(onnx.embed_chips, lfw_chips)
    _, pred_dlib = _rank1_predictions(ref.embed_chips, lfw_chips)
    assert pred_onnx == pred_dlib
    assert np.mean([t == p for t, p in zip(truth, pred_onnx, strict=True)]) >= 0.98


def test_backend_choice(model_store, tmp_path):
    """auto picks ONNX when the .dat converts; onnx fails loudly on a bad file; unknown names are refused."""
    shape = str(model_store.path(SHAPE_MODEL))
    assert FaceEmbedder.from_store(model_store).backend == "onnx"
    bad = tmp_path / "not_a_net.dat"
    bad.write_bytes(b"\x01\x01\x01\x03abc")
    with pytest.raises(InferenceError, match="loss_metric_2"):
        FaceEmbedder(shape, str(bad), backend="onnx")
    with pytest.raises(InferenceError, match="unknown embedding backend"):
        FaceEmbedder(shape, str(model_store.path(EMBEDDING_MODEL)), backend="tpu")  # type: ignore[arg-type]


def test_flip_and_batches(model_store, lfw_chips):
    """flip=True gives unit vectors that differ from the plain ones but stay close to them; batches of
    any size give the same rows as one chip at a time."""
    plain = FaceEmbedder.from_store(model_store)
    flipped = FaceEmbedder.from_store(model_store, flip=True)
    chips = lfw_chips["Tony_Blair"][:5] * 4  # 20 chips: more than one ONNX batch
    a = plain.embed_chips(chips)
    b = flipped.embed_chips(chips)
    assert a.shape == b.shape == (20, 128)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    cos = np.sum(a * b, axis=1)
    assert np.all(cos > 0.9) and np.all(cos < 1 - 1e-4)
    one_by_one = np.stack([plain.embed_chip(c) for c in chips])
    assert np.abs(a - one_by_one).max() < 1e-5

"""dlib's ResNet converted from its .dat and run by ONNX Runtime: parser, determinism, and equivalence
with dlib itself (the reference) on real face chips."""

from __future__ import annotations

import numpy as np
import pytest

from inference.backends.dlib_dat import Conv, DatFormatError, Fc, parse_dlib_net
from inference.backends.dlib_onnx import DlibOnnxModel, convert_dat
from inference.embedder import EMBEDDING_MODEL
from inference.errors import InferenceError
from inference.image import load_image

# dlib computes in float32 with its own summation order; the converted graph must agree this closely.
MAX_ABS_DIFF = 1e-4


@pytest.fixture(scope="module")
def dat_bytes(model_store) -> bytes:
    return model_store.path(EMBEDDING_MODEL).read_bytes()


@pytest.fixture(scope="module")
def dlib_net(model_store):
    """dlib's own network: the reference every ONNX output is compared with."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_store.path(EMBEDDING_MODEL)))


@pytest.fixture(scope="module")
def onnx_model(model_store) -> DlibOnnxModel:
    return DlibOnnxModel(model_store.path(EMBEDDING_MODEL))


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


def test_parser_reads_the_whole_network(dat_bytes):
    """GIVEN the fetched .dat THEN the parser finds ResNet-29's 29 convolutions, the 256->128 fc and
    dlib's RGB means, and consumed every byte (it raises otherwise)."""
    net = parse_dlib_net(dat_bytes)
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert len(convs) == 29
    assert convs[0].weight.shape == (32, 3, 7, 7) and convs[0].stride == (2, 2) and convs[0].padding == (0, 0)
    assert {c.padding for c in convs if c.stride == (1, 1)} == {(1, 1)}
    assert isinstance(net.layers[-1], Fc) and net.layers[-1].weight.shape == (256, 128)
    assert net.input_size == (150, 150)
    assert np.allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-4)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[: len(b) // 2], "ends early"),
        (lambda b: b + b"\x00", "bytes left"),
        (lambda b: b[:5] + b"X" + b[6:], "loss_metric_2"),
        (lambda b: b"", "ends early"),
    ],
    ids=["truncated", "trailing-byte", "wrong-loss", "empty"],
)
def test_parser_rejects_other_files(dat_bytes, mutate, message):
    """GIVEN a damaged or different file THEN a clear DatFormatError (an InferenceError), never wrong weights."""
    with pytest.raises(DatFormatError, match=message) as info:
        parse_dlib_net(mutate(dat_bytes))
    assert isinstance(info.value, InferenceError)


def test_conversion_is_deterministic(model_store):
    """The converted graph is a pure function of the .dat: two conversions are byte-identical."""
    path = model_store.path(EMBEDDING_MODEL)
    assert convert_dat(path) == convert_dat(path)


def test_onnx_equals_dlib_on_real_chips(shared_data, dlib_net, onnx_model, lfw_chips):
    """GIVEN 155 real chips (55 dlib Johns + 100 aligned LFW faces) THEN every raw 128-D descriptor from
    ONNX Runtime is within 1e-4 of dlib's compute_face_descriptor, one chip at a time and batched."""
    johns = [load_image(p) for p in sorted((shared_data / "dlib_johns_5id").glob("*/*.jpg"))]
    chips = johns + [c for cs in lfw_chips.values() for c in cs]
    assert len(chips) >= 150
    ref = np.stack([np.asarray(dlib_net.compute_face_descriptor(c), dtype=np.float32) for c in chips])
    batched = np.concatenate([onnx_model.run(np.stack(chips[i:i + 16]))[0] for i in range(0, len(chips), 16)])
    single = np.stack([onnx_model.run(c)[0][0] for c in chips[:10]])
    assert batched.shape == (len(chips), 128)
    assert np.abs(batched - ref).max() < MAX_ABS_DIFF
    assert np.abs(single - ref[:10]).max() < MAX_ABS_DIFF

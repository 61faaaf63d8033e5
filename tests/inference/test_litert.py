"""LiteRT backend: accelerator selection on a machine without an Edge TPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from inference.backends.litert import LiteRTModel
from inference.backends.onnx import OnnxModel
from inference.errors import AcceleratorError


def test_edgetpu_required_but_absent_raises(model_store):
    with pytest.raises(AcceleratorError, match="libedgetpu|_edgetpu.tflite"):
        LiteRTModel(model_store.path("blazeface_short"), accelerator="edgetpu")


def test_auto_falls_back_to_cpu_with_one_log_line(model_store, caplog):
    with caplog.at_level(logging.DEBUG, logger="inference"):
        model = LiteRTModel(model_store.path("blazeface_short"), accelerator="auto")
    assert model.accelerator == "cpu" and model.backend == "litert"
    records = [r for r in caplog.records if r.name.startswith("inference")]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO and "edgetpu unavailable" in records[0].getMessage()
    assert "using CPU" in records[0].getMessage()


def test_cpu_model_runs(model_store):
    model = LiteRTModel(model_store.path("blazeface_short"), accelerator="cpu", name="blazeface_short")
    assert model.input_shapes == [(1, 128, 128, 3)]
    outputs = model.run(np.zeros((1, 128, 128, 3), np.float32))
    assert sorted(o.shape for o in outputs) == [(1, 896, 1), (1, 896, 16)]


def test_onnx_gender_model_runs(model_store):
    model = OnnxModel(model_store.path("gender_v1"))
    (probs,) = model.run(np.zeros((1, 3, 32, 32), np.float32))
    assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1.0) < 1e-4

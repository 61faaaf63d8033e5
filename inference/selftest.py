"""Per-model self-test: load each model of the store, run it on a synthetic input, time it.

``joyedge selftest inference`` (owned by the drivers CLI) prints :func:`check_models`' result. A missing
or corrupt file is reported as ``missing`` with the fix; an Edge TPU that was asked for but is not usable
is reported in ``detail`` (``ok`` on CPU for ``auto``, ``degraded`` when ``edgetpu`` was required).
Nothing here raises for a bad model: every model gets a row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from inference.errors import AcceleratorError, InferenceError, ModelCorruptError, ModelMissingError
from inference.store import ModelStore

Status = Literal["ok", "degraded", "missing"]


@dataclass(frozen=True)
class ModelCheck:
    """The self-test result of one model."""

    name: str
    backend: str
    accelerator: str
    input_shape: str
    median_ms: float | None
    status: Status
    detail: str


def _shape_text(shapes: list[tuple]) -> str:
    return ", ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)


def _concrete(shape: tuple) -> tuple[int, ...]:
    """A symbolic ONNX dimension (batch ``N``) becomes 1."""
    return tuple(d if isinstance(d, int) and d > 0 else 1 for d in shape)


def _time(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: first run allocates and pages the weights in
    samples = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(samples))


def _check_tflite(store: ModelStore, name: str, accelerator: str, runs: int) -> ModelCheck:
    from inference.backends.litert import LiteRTModel

    path = store.path(name)
    detail = ""
    status: Status = "ok"
    try:
        model = LiteRTModel(path, accelerator=accelerator, name=name)  # type: ignore[arg-type]
    except AcceleratorError as err:
        # Required Edge TPU is unusable: still measure on the CPU so the operator sees a figure.
        model = LiteRTModel(path, accelerator="cpu", name=name)
        status, detail = "degraded", f"{err}; measured on CPU instead"
    else:
        if model.accelerator == "cpu" and model.fallback_reason:
            detail = f"Edge TPU not used ({model.fallback_reason}); running on CPU"
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, size=_concrete(s)).astype(np.float32) for s in model.input_shapes]
    ms = _time(lambda: model.run(*inputs), runs)
    return ModelCheck(name, model.backend, model.accelerator, _shape_text(model.input_shapes), ms, status, detail)


def _check_onnx(store: ModelStore, name: str, accelerator: str, runs: int) -> ModelCheck:
    from inference.backends.onnx import OnnxModel

    model = OnnxModel(store.path(name), name=name)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 1, size=_concrete(s)).astype(np.float32) for s in model.input_shapes]
    ms = _time(lambda: model.run(*inputs), runs)
    return ModelCheck(
        name, model.backend, model.accelerator, _shape_text(model.input_shapes), ms, "ok", _cpu_only(accelerator)
    )


def _cpu_only(accelerator: str) -> str:
    # Only .tflite models have Edge TPU variants; the others running on the CPU is not a degradation.
    return "CPU-only model (no Edge TPU variant exists)" if accelerator != "cpu" else ""


def _check_dlib_resnet(store: ModelStore, name: str, accelerator: str, runs: int) -> ModelCheck:
    from inference.embedder import CHIP_SIZE, FaceEmbedder

    embedder = FaceEmbedder.from_store(store)
    chip = np.random.default_rng(0).integers(0, 256, size=(CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    ms = _time(lambda: embedder.embed_chip(chip), runs)
    backend = str(getattr(embedder, "backend", "dlib"))
    return ModelCheck(name, backend, "cpu", f"[{CHIP_SIZE},{CHIP_SIZE},3] uint8", ms, "ok", _cpu_only(accelerator))


def _check_dlib_shape(store: ModelStore, name: str, accelerator: str, runs: int) -> ModelCheck:
    try:
        import dlib
    except ImportError as err:
        raise InferenceError("dlib is not installed: `pip install dlib-bin`") from err
    try:
        predictor = dlib.shape_predictor(str(store.path(name)))
    except RuntimeError as err:
        raise InferenceError(f"dlib cannot load {name} ({err}): run `joyedge models verify`") from err
    img = np.random.default_rng(0).integers(0, 256, size=(200, 200, 3), dtype=np.uint8)
    rect = dlib.rectangle(40, 40, 160, 160)
    ms = _time(lambda: predictor(img, rect), runs)
    return ModelCheck(name, "dlib", "cpu", "[200,200,3] uint8 + box", ms, "ok", _cpu_only(accelerator))


def _check_data(store: ModelStore, name: str, accelerator: str, runs: int) -> ModelCheck:
    import json

    path = store.path(name)
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelCorruptError(f"{path} is not valid JSON ({err}): delete it and run `joyedge models fetch`") from err
    return ModelCheck(name, "data", "-", "-", None, "ok", "preprocessing manifest, nothing to run")


def _checker(file: str, name: str) -> Callable[[ModelStore, str, str, int], ModelCheck]:
    if file.endswith(".tflite"):
        return _check_tflite
    if file.endswith(".onnx"):
        return _check_onnx
    if file.endswith(".json"):
        return _check_data
    if name.startswith("dlib_shape"):
        return _check_dlib_shape
    return _check_dlib_resnet


def check_models(store: ModelStore | None = None, accelerator: str = "auto", runs: int = 10) -> list[ModelCheck]:
    """Load and time every model of ``store`` (default store); one :class:`ModelCheck` per model.

    ``accelerator`` is auto, cpu or edgetpu, as in the device config. Never raises for a model problem.
    """
    if accelerator not in ("auto", "cpu", "edgetpu"):
        raise InferenceError(f"accelerator must be auto, cpu or edgetpu, not {accelerator!r}")
    store = store or ModelStore()
    checks = []
    for entry in store.entries():
        check = _checker(entry.file, entry.name)
        try:
            # Cheap presence and size check first; a full sha256 is `joyedge models verify`'s job.
            store.path(entry.name)
            checks.append(check(store, entry.name, accelerator, runs))
        except (ModelMissingError, ModelCorruptError) as err:
            checks.append(ModelCheck(entry.name, "-", "-", entry.input, None, "missing", str(err)))
        except InferenceError as err:
            checks.append(ModelCheck(
                entry.name, "-", "-", entry.input, None, "missing",
                f"{err} (delete {store.root / entry.file} and run `joyedge models fetch`)",
            ))
    return checks

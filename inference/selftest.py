"""Per-model self-test: load each model of the store, run it on a synthetic input, time it.

``joyedge selftest inference`` (owned by the drivers CLI) prints :func:`check_models`' result. A missing
or corrupt file is reported as ``missing`` with the fix; an Edge TPU that was asked for but is not usable
is reported per model in ``edgetpu_reason`` (``ok`` on CPU for ``auto``, ``degraded`` when ``edgetpu`` was
required). The reason is the same for every model when the delegate is absent, so :func:`summarize_accelerator`
says it once and keeps per model only what differs (a missing ``*_edgetpu.tflite`` variant).
Nothing here raises for a bad model: every model gets a row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from inference.errors import AcceleratorError, InferenceError, ModelCorruptError, ModelMissingError
from inference.store import ModelStore

Status = Literal["ok", "degraded", "missing"]
_NO_VARIANT = "no Edge TPU model "  # the start of LiteRTModel's reason for a missing *_edgetpu.tflite


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
    # Why the Edge TPU is not used for this model (full text); "" when it is used or was not asked for.
    edgetpu_reason: str = ""


@dataclass(frozen=True)
class AcceleratorSummary:
    """What the self-test found about the accelerator, once for all models."""

    requested: str
    edgetpu_models: list[str] = field(default_factory=list)  # running on the Edge TPU
    cpu_models: list[str] = field(default_factory=list)  # could use it, run on the CPU
    reason: str = ""  # the part of the fallback reason every such model shares (e.g. the delegate)
    per_model: dict[str, str] = field(default_factory=dict)  # what differs per model (e.g. no variant)

    def line(self) -> str:
        """One line for the self-test table ("" when the Edge TPU was not asked for or is used by all)."""
        if not self.cpu_models:
            if self.edgetpu_models:
                return f"accelerator: {self.requested}; Edge TPU used by {', '.join(self.edgetpu_models)}"
            return ""
        text = (f"accelerator: {self.requested}; Edge TPU not used by {', '.join(self.cpu_models)}, "
                "running on CPU")
        if self.reason:
            text += f": {self.reason}"
        if self.per_model and all(w.startswith(_NO_VARIANT) and "; " not in w for w in self.per_model.values()):
            # The usual case: no *_edgetpu.tflite file at all. Naming each file again says nothing new.
            missing = "all of them" if len(self.per_model) == len(self.cpu_models) else ", ".join(self.per_model)
            text += f"; no *_edgetpu.tflite model installed for {missing}"
        elif self.per_model:
            text += "; " + "; ".join(f"{name}: {why}" for name, why in self.per_model.items())
        return text

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (full information)."""
        return {"requested": self.requested, "edgetpu_models": self.edgetpu_models, "cpu_models": self.cpu_models,
                "reason": self.reason, "per_model": self.per_model}


def summarize_accelerator(requested: str, reasons: Mapping[str, str], edgetpu_models: list[str]) -> AcceleratorSummary:
    """Fold the per-model fallback reasons (name → full reason, "; "-separated parts) into one summary.

    The parts every model shares (the delegate did not load) become ``reason``; the rest stays per model.
    """
    # A required Edge TPU's error names the model first ("Edge TPU requested for X but …"): drop that so
    # the shared parts compare equal across models.
    parts = {name: [p for p in why.removeprefix(f"Edge TPU requested for {name} but ").split("; ") if p]
             for name, why in reasons.items() if why}
    common: list[str] = []
    if parts:
        first = next(iter(parts.values()))
        common = [p for p in first if all(p in other for other in parts.values())]
    per_model = {name: "; ".join(p for p in ps if p not in common) for name, ps in parts.items()}
    return AcceleratorSummary(requested, list(edgetpu_models), list(parts), "; ".join(common),
                              {n: w for n, w in per_model.items() if w})


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
    detail = reason = ""
    status: Status = "ok"
    try:
        model = LiteRTModel(path, accelerator=accelerator, name=name)  # type: ignore[arg-type]
    except AcceleratorError as err:
        # Required Edge TPU is unusable: still measure on the CPU so the operator sees a figure.
        model = LiteRTModel(path, accelerator="cpu", name=name)
        status, detail, reason = "degraded", "Edge TPU required but unusable; measured on CPU", str(err)
    else:
        if model.accelerator == "cpu" and model.fallback_reason:
            # The reason itself is said once for all models (summarize_accelerator), not on every row.
            detail, reason = "Edge TPU not used", model.fallback_reason
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, size=_concrete(s)).astype(np.float32) for s in model.input_shapes]
    ms = _time(lambda: model.run(*inputs), runs)
    return ModelCheck(name, model.backend, model.accelerator, _shape_text(model.input_shapes), ms, status, detail,
                      reason)


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
    return "CPU-only model" if accelerator != "cpu" else ""


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

"""LiteRT (TFLite) backend, with the Coral Edge TPU reached through the ``libedgetpu`` delegate.

The runtime is imported when a model is loaded, never at import time: ``ai_edge_litert`` first, and
``tflite_runtime`` only when that is what the device has. ``accelerator="auto"`` uses the Edge TPU
when both the delegate and the ``*_edgetpu.tflite`` sibling of the model exist, else logs one info
line and runs on the CPU; ``accelerator="edgetpu"`` raises :class:`AcceleratorError` instead.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np

from inference.backends.base import Model
from inference.errors import AcceleratorError, InferenceError

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"
AcceleratorChoice = Literal["auto", "cpu", "edgetpu"]


def _runtime() -> ModuleType:
    """The interpreter module: ai_edge_litert, else tflite_runtime, else an install hint."""
    try:
        from ai_edge_litert import interpreter
    except ImportError as litert_err:
        try:
            from tflite_runtime import interpreter  # type: ignore[no-redef]
        except ImportError:
            raise InferenceError(
                "no TFLite runtime is installed: `pip install ai-edge-litert`"
            ) from litert_err
    return interpreter


def edgetpu_variant(path: Path) -> Path:
    """The Edge TPU-compiled sibling of a model: ``x.tflite`` → ``x_edgetpu.tflite``."""
    return path.with_name(f"{path.stem}_edgetpu{path.suffix}")


class LiteRTModel(Model):
    """A ``.tflite`` model run by LiteRT on the CPU or the Edge TPU. One inference at a time (locked)."""

    backend = "litert"

    def __init__(
        self,
        path: str | Path,
        accelerator: AcceleratorChoice = "auto",
        num_threads: int = 1,
        name: str | None = None,
    ) -> None:
        """Load ``path``; see the module docstring for how ``accelerator`` is resolved."""
        if accelerator not in ("auto", "cpu", "edgetpu"):
            raise InferenceError(f"accelerator must be auto, cpu or edgetpu, not {accelerator!r}")
        path = Path(path)
        self.name = name or path.stem
        self.path = path
        rt = _runtime()
        self._lock = threading.Lock()
        self._interpreter = None
        # Why the Edge TPU is not used ("" when it is, or when the CPU was asked for): for selftest.
        self.fallback_reason = ""
        if accelerator != "cpu":
            delegate, reason = self._edgetpu_delegate(rt, path)
            if delegate is not None:
                self._interpreter = self._load(rt, edgetpu_variant(path), [delegate], num_threads)
                self.accelerator = "edgetpu"
            elif accelerator == "edgetpu":
                raise AcceleratorError(
                    f"Edge TPU requested for {self.name} but {reason}: install libedgetpu1-std from "
                    "Coral's apt repository and the *_edgetpu.tflite model, or set accelerator to auto/cpu"
                )
            else:
                self.fallback_reason = reason
                log.info("edgetpu unavailable (%s); using CPU for %s", reason, self.name)
        if self._interpreter is None:
            self._interpreter = self._load(rt, path, None, num_threads)
            self.accelerator = "cpu"
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()
        self.input_shapes = [tuple(int(d) for d in i["shape"]) for i in self._inputs]

    @staticmethod
    def _edgetpu_delegate(rt: ModuleType, path: Path) -> tuple[object | None, str]:
        """The Edge TPU delegate, or None and every reason it cannot be used."""
        reasons = []
        variant = edgetpu_variant(path)
        if not variant.is_file():
            reasons.append(f"no Edge TPU model {variant.name}")
        delegate = None
        try:
            # dlopen first: LiteRT's Delegate prints a spurious traceback from __del__ when the
            # library is absent, and this check gives the same answer without that noise.
            ctypes.CDLL(EDGETPU_LIBRARY)
            delegate = rt.load_delegate(EDGETPU_LIBRARY)
        except (ValueError, OSError, RuntimeError) as err:
            reasons.append(f"delegate {EDGETPU_LIBRARY} did not load: {err}")
        if reasons:
            return None, "; ".join(reasons)
        return delegate, ""

    @staticmethod
    def _load(rt: ModuleType, path: Path, delegates: list | None, num_threads: int) -> object:
        if not path.is_file():
            raise InferenceError(f"model file {path} is missing: run `joyedge models fetch`")
        try:
            interp = rt.Interpreter(
                model_path=str(path), experimental_delegates=delegates, num_threads=num_threads
            )
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise InferenceError(
                f"LiteRT cannot load {path} ({err}): verify it with `joyedge models verify`"
            ) from err
        return interp

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Set every input, invoke, and return copies of every output."""
        if len(inputs) != len(self._inputs):
            raise InferenceError(f"{self.name} takes {len(self._inputs)} inputs, got {len(inputs)}")
        with self._lock:
            for detail, arr in zip(self._inputs, inputs, strict=True):
                self._interpreter.set_tensor(detail["index"], np.asarray(arr, dtype=detail["dtype"]))
            try:
                self._interpreter.invoke()
            except RuntimeError as err:
                raise InferenceError(f"{self.name} inference failed: {err}") from err
            return [self._interpreter.get_tensor(d["index"]) for d in self._outputs]

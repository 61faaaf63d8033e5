"""ONNX Runtime backend (CPU). ``onnxruntime`` is imported when a model is loaded, not at import time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.backends.base import Model
from inference.errors import InferenceError


class OnnxModel(Model):
    """An ``.onnx`` model run by ONNX Runtime on the CPU, one intra-op thread by default."""

    backend = "onnx"
    accelerator = "cpu"

    def __init__(self, path: str | Path, intra_op_threads: int = 1, name: str | None = None) -> None:
        """Load ``path`` into an inference session."""
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InferenceError("ONNX Runtime is not installed: `pip install onnxruntime`") from err
        path = Path(path)
        self.name = name or path.stem
        if not path.is_file():
            raise InferenceError(f"model file {path} is missing: run `joyedge models fetch`")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped Fail/InvalidGraph exceptions
            raise InferenceError(f"ONNX Runtime cannot load {path} ({err}): run `joyedge models verify`") from err
        self._input_names = [i.name for i in self._session.get_inputs()]
        self.input_shapes = [tuple(i.shape) for i in self._session.get_inputs()]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run one inference; inputs are cast to float32 when they are not already."""
        if len(inputs) != len(self._input_names):
            raise InferenceError(f"{self.name} takes {len(self._input_names)} inputs, got {len(inputs)}")
        feed = {n: np.asarray(a, dtype=np.float32) for n, a in zip(self._input_names, inputs, strict=True)}
        try:
            return list(self._session.run(None, feed))
        except Exception as err:  # onnxruntime's exception types are not importable in a stable way
            raise InferenceError(f"{self.name} inference failed: {err}") from err

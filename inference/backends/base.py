"""The one model interface every runtime backend (LiteRT, ONNX Runtime, dlib) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np

Backend = Literal["litert", "onnx", "dlib"]
Accelerator = Literal["cpu", "edgetpu"]


class Model(ABC):
    """A loaded model: fixed inputs in, a list of output arrays out.

    Subclasses set ``name``, ``backend``, ``accelerator`` and ``input_shapes`` in their constructor.
    """

    name: str
    backend: Backend
    accelerator: Accelerator
    input_shapes: list[tuple[int | str, ...]]

    @abstractmethod
    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run one inference; inputs in model input order, outputs in model output order."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, accelerator={self.accelerator!r})"

"""Face embeddings with dlib's ResNet (128-D, 99.38 % on LFW), aligned by its 5-point shape predictor.

``dlib`` (from the ``dlib-bin`` wheel) is imported when an embedder is built, never at import time.
The embedding is the expensive stage (~90 ms on one core): compute it once per tracked face.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.detector import as_rgb
from inference.errors import InferenceError

if TYPE_CHECKING:
    from inference.store import ModelStore

EMBEDDING_MODEL = "dlib_resnet_v1"
SHAPE_MODEL = "dlib_shape5"
EMBEDDING_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25

Box = tuple[float, float, float, float]


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise InferenceError("dlib is not installed: `pip install dlib-bin`") from err
    return dlib


def l2_normalise(vec: np.ndarray) -> np.ndarray:
    """``vec`` scaled to unit length (float32); a zero vector stays zero."""
    vec = np.asarray(vec, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class FaceEmbedder:
    """Align a detected face with the 5-point predictor and embed it with dlib's ResNet."""

    model_name = EMBEDDING_MODEL
    dim = EMBEDDING_DIM

    def __init__(self, shape_predictor_path: str, recognition_model_path: str, num_jitters: int = 0) -> None:
        """Load both dlib models by path. ``num_jitters`` > 0 averages that many jittered chips (slower)."""
        dlib = _dlib()
        try:
            self._shape = dlib.shape_predictor(str(shape_predictor_path))
            self._net = dlib.face_recognition_model_v1(str(recognition_model_path))
        except RuntimeError as err:
            raise InferenceError(
                f"dlib cannot load its models ({err}): run `joyedge models verify`"
            ) from err
        self._dlib = dlib
        self.num_jitters = num_jitters

    @classmethod
    def from_store(cls, store: ModelStore, num_jitters: int = 0) -> FaceEmbedder:
        """Load the shape predictor and ResNet from the model store."""
        return cls(str(store.path(SHAPE_MODEL)), str(store.path(EMBEDDING_MODEL)), num_jitters=num_jitters)

    def align(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 150x150 aligned face chip (RGB uint8) for ``box`` (x0, y0, x1, y1 in pixels)."""
        rgb = np.ascontiguousarray(as_rgb(rgb))
        x0, y0, x1, y1 = (round(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise InferenceError(f"face box {box} is empty")
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        shape = self._shape(rgb, rect)
        return self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """The L2-normalised float32 (128,) embedding of an aligned 150x150 chip."""
        chip = np.ascontiguousarray(as_rgb(chip))
        if chip.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
            raise InferenceError(f"face chips must be {CHIP_SIZE}x{CHIP_SIZE}, got {chip.shape[:2]}")
        desc = self._net.compute_face_descriptor(chip, self.num_jitters)
        return l2_normalise(np.asarray(desc, dtype=np.float32))

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The L2-normalised float32 (128,) embedding of the face in ``box`` of an RGB frame."""
        return self.embed_chip(self.align(rgb, box))

    def embed_many(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Embeddings of several faces of one frame, shape (len(boxes), 128)."""
        if not boxes:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return np.stack([self.embed(rgb, box) for box in boxes])

"""Face embeddings with dlib's ResNet (128-D, 99.38 % on LFW), aligned by its 5-point shape predictor.

Before the predictor the detector box is mapped to dlib's detector convention (``ALIGN_BOX_MAP``,
fitted by ``bench/fit_align_box.py``). Two runtimes compute the same network: ONNX Runtime on a
graph converted in memory from the verified ``.dat`` file (:mod:`inference.backends.dlib_onnx`, ~5 ms a chip on one core, embeddings within 1e-6
of dlib's) and dlib itself (~90-120 ms a chip). ``backend="auto"`` takes ONNX Runtime when it loads and
the conversion succeeds, else dlib with one log line. Alignment (5-point predictor, ``get_face_chip``)
is dlib's in both cases. ``dlib`` (from the ``dlib-bin`` wheel) is imported when an embedder is built,
never at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

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
# ONNX Runtime runs at most this many chips in one call (bounds the activation memory of embed_many).
MAX_BATCH = 16
# dlib's 5-point predictor was trained on dlib's own (HOG) detector boxes; BlazeFace boxes follow
# another convention, so before the predictor a box is mapped to where HOG would put it:
#   centre += (DX * w, DY * h), size *= (SX, SY)   (w, h: the BlazeFace box).
# Fitted by `python bench/fit_align_box.py` as the median over 123 short-range BlazeFace/HOG
# (upsample 1) pairs of the same faces in photos and video frames DISJOINT from the identification
# evaluation (multi_face PASCAL and group photos, pedestrian scenes, the facenet-pytorch crowd video;
# never lfw_original_10id nor a never-enrolled person of the open-set split). On held-out photos
# (deepface_couple, longoria-cooper, the two Intel GIFs) it raises the short-range box IoU with HOG
# 0.684 -> 0.698 and lowers the 5-point disagreement with HOG-started points 0.021 -> 0.017 eye
# distances (full range: 0.799 -> 0.803, 0.017 -> 0.012). Short range, because it is the detector of
# the mirror, of cloud enrolment and of `joyedge eval`; full-range boxes sit ~5 % lower (see the script).
ALIGN_BOX_MAP = (-0.0253, -0.0453, 0.9856, 0.9843)

Box = tuple[float, float, float, float]
EmbedBackend = Literal["auto", "onnx", "dlib"]

log = logging.getLogger(__name__)


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as err:
        raise InferenceError("dlib is not installed: `pip install dlib-bin`") from err
    return dlib


def map_box_to_dlib(box: Box, params: tuple[float, float, float, float] = ALIGN_BOX_MAP) -> Box:
    """``box`` (x0, y0, x1, y1) moved and scaled to dlib's detector convention by ``(DX, DY, SX, SY)``."""
    dx, dy, sx, sy = params
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * h
    return (cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2)


def l2_normalise(vec: np.ndarray) -> np.ndarray:
    """``vec`` scaled to unit length (float32); a zero vector stays zero."""
    vec = np.asarray(vec, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def _normalise_rows(mat: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    return (mat / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class FaceEmbedder:
    """Align a detected face with the 5-point predictor and embed it with dlib's ResNet.

    ``backend``: ``auto`` (ONNX Runtime when usable, else dlib), ``onnx`` (fail if it is not usable)
    or ``dlib``. ``self.backend`` says which one runs. ``flip=True`` averages each chip's descriptor
    with that of its mirror image (twice the embedding cost; see bench/RESULTS.md for its effect).
    """

    model_name = EMBEDDING_MODEL
    dim = EMBEDDING_DIM

    def __init__(
        self,
        shape_predictor_path: str,
        recognition_model_path: str,
        num_jitters: int = 0,
        *,
        backend: EmbedBackend = "auto",
        flip: bool = False,
        intra_op_threads: int = 1,
    ) -> None:
        """Load both models by path. ``num_jitters`` > 1 averages that many jittered chips (slower)."""
        if backend not in ("auto", "onnx", "dlib"):
            raise InferenceError(f"unknown embedding backend {backend!r}: use auto, onnx or dlib")
        dlib = _dlib()
        try:
            self._shape = dlib.shape_predictor(str(shape_predictor_path))
        except RuntimeError as err:
            raise InferenceError(
                f"dlib cannot load its models ({err}): run `joyedge models verify`"
            ) from err
        self._dlib = dlib
        self.num_jitters = num_jitters
        self.flip = flip
        self._onnx: Any = None
        self._net: Any = None
        if backend in ("auto", "onnx"):
            from inference.backends.dlib_onnx import DlibOnnxModel

            try:
                self._onnx = DlibOnnxModel(recognition_model_path, intra_op_threads=intra_op_threads)
            except InferenceError as err:
                if backend == "onnx":
                    raise
                log.warning("embedder: ONNX Runtime unusable (%s); using dlib (~20x slower)", err)
        if self._onnx is None:
            try:
                self._net = dlib.face_recognition_model_v1(str(recognition_model_path))
            except RuntimeError as err:
                raise InferenceError(
                    f"dlib cannot load its models ({err}): run `joyedge models verify`"
                ) from err
        self.backend: Literal["onnx", "dlib"] = "onnx" if self._onnx is not None else "dlib"

    @classmethod
    def from_store(
        cls, store: ModelStore, num_jitters: int = 0, *, backend: EmbedBackend = "auto", flip: bool = False
    ) -> FaceEmbedder:
        """Load the shape predictor and ResNet from the model store."""
        return cls(
            str(store.path(SHAPE_MODEL)), str(store.path(EMBEDDING_MODEL)), num_jitters=num_jitters,
            backend=backend, flip=flip,
        )

    def align(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The 150x150 aligned face chip (RGB uint8) for a BlazeFace ``box`` (x0, y0, x1, y1 in pixels).

        The box is first mapped to dlib's detector convention (:data:`ALIGN_BOX_MAP`), the boxes the
        5-point predictor was trained on; enrolment and probes both pass through here.
        """
        rgb = np.ascontiguousarray(as_rgb(rgb))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise InferenceError(f"face box {box} is empty")
        x0, y0, x1, y1 = (round(v) for v in map_box_to_dlib(box))
        if x1 <= x0 or y1 <= y0:
            raise InferenceError(f"face box {box} is empty")
        rect = self._dlib.rectangle(x0, y0, x1, y1)
        shape = self._shape(rgb, rect)
        return self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        """The L2-normalised float32 (128,) embedding of an aligned 150x150 chip."""
        return self.embed_chips([chip])[0]

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings of several aligned chips, shape (len(chips), 128); batched on ONNX."""
        if len(chips) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        batch = [self._check_chip(c) for c in chips]
        raw = self._descriptors(batch)
        if self.flip:
            raw = raw + self._descriptors([np.ascontiguousarray(c[:, ::-1]) for c in batch])
        return _normalise_rows(raw)

    def embed(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The L2-normalised float32 (128,) embedding of the face in ``box`` of an RGB frame."""
        return self.embed_chip(self.align(rgb, box))

    def embed_many(self, rgb: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
        """Embeddings of several faces of one frame, shape (len(boxes), 128), in one batch on ONNX."""
        if not boxes:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.embed_chips([self.align(rgb, box) for box in boxes])

    @staticmethod
    def _check_chip(chip: np.ndarray) -> np.ndarray:
        chip = np.ascontiguousarray(as_rgb(chip))
        if chip.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
            raise InferenceError(f"face chips must be {CHIP_SIZE}x{CHIP_SIZE}, got {chip.shape[:2]}")
        return chip

    def _descriptors(self, chips: list[np.ndarray]) -> np.ndarray:
        """Raw (unnormalised) float32 descriptors, one row per chip, as dlib's compute_face_descriptor."""
        if self._onnx is None:
            return np.stack([
                np.asarray(self._net.compute_face_descriptor(c, self.num_jitters), dtype=np.float32) for c in chips
            ])
        if self.num_jitters > 1:
            # dlib averages the descriptors of num_jitters randomly jittered copies (jitter_image);
            # the same copies are made here and run as one batch.
            return np.stack([
                self._run(np.stack(self._dlib.jitter_image(c, num_jitters=self.num_jitters))).mean(axis=0)
                for c in chips
            ])
        return self._run(np.stack(chips))

    def _run(self, batch: np.ndarray) -> np.ndarray:
        parts = [self._onnx.run(batch[i:i + MAX_BATCH])[0] for i in range(0, len(batch), MAX_BATCH)]
        return np.concatenate(parts).astype(np.float32, copy=False)

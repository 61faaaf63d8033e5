"""468-point face mesh (MediaPipe face_landmark.tflite) and the head/eye/mouth geometry derived from it.

The face box from BlazeFace is enlarged to a square (MediaPipe uses 1.5x the box), cropped, resized to
192x192, scaled to [0, 1], and the mesh is mapped back to source pixels. The geometry (yaw, pitch,
eye and mouth openness) feeds the quality gate, the liveness challenge and head orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from inference.backends.base import Model
from inference.detector import as_rgb
from inference.errors import InferenceError

if TYPE_CHECKING:
    from inference.store import ModelStore

LANDMARK_MODEL = "face_landmark"
INPUT_SIZE = 192
# MediaPipe's face_landmark graph crops 1.5x the detection box around its centre.
BOX_SCALE = 1.5
NUM_POINTS = 468

# Mesh indices (MediaPipe canonical face mesh). "Right"/"left" are the subject's.
RIGHT_EYE = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid
LEFT_EYE = (263, 362, 386, 374)
MOUTH = (61, 291, 13, 14)  # right corner, left corner, upper lip inner, lower lip inner
NOSE_TIP = 1
RIGHT_CHEEK, LEFT_CHEEK = 234, 454  # face contour at eye height
FOREHEAD, CHIN = 10, 152


@dataclass(frozen=True)
class FaceGeometry:
    """Head pose and openness measures from one mesh.

    ``yaw`` is in [-1, 1]: the nose tip's horizontal offset from the cheek midpoint over half the
    cheek distance; positive when the nose points to the image's right, which is the subject's left
    for a camera facing them. ``pitch`` likewise vertically (positive = looking down). ``eye_open``
    is the mean eye aspect ratio (lid gap / eye width, ~0.25-0.35 open, < 0.15 closed); ``mouth_open``
    is the lip gap over mouth width (~0 closed, > 0.35 clearly open). ``presence`` is the model's
    face score in [0, 1].
    """

    yaw: float
    pitch: float
    eye_open: float
    mouth_open: float
    presence: float


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """468 points (x, y, z) in source pixels (z relative, same scale as x) and the derived geometry."""

    points: np.ndarray
    geometry: FaceGeometry


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a[:2] - b[:2])))


def geometry_of(points: np.ndarray, presence: float = 1.0) -> FaceGeometry:
    """Yaw, pitch, eye and mouth openness of a (468, 2+) mesh in any pixel scale."""
    p = np.asarray(points, dtype=np.float64)

    def ear(idx: tuple[int, int, int, int]) -> float:
        width = _dist(p[idx[0]], p[idx[1]])
        return _dist(p[idx[2]], p[idx[3]]) / width if width > 1e-6 else 0.0

    cheek_mid = (p[RIGHT_CHEEK] + p[LEFT_CHEEK]) / 2.0
    half_width = max(_dist(p[RIGHT_CHEEK], p[LEFT_CHEEK]) / 2.0, 1e-6)
    yaw = float(np.clip((p[NOSE_TIP, 0] - cheek_mid[0]) / half_width, -1.0, 1.0))
    vertical_mid = (p[FOREHEAD] + p[CHIN]) / 2.0
    half_height = max(_dist(p[FOREHEAD], p[CHIN]) / 2.0, 1e-6)
    pitch = float(np.clip((p[NOSE_TIP, 1] - vertical_mid[1]) / half_height, -1.0, 1.0))
    mouth_width = _dist(p[MOUTH[0]], p[MOUTH[1]])
    mouth = _dist(p[MOUTH[2]], p[MOUTH[3]]) / mouth_width if mouth_width > 1e-6 else 0.0
    return FaceGeometry(yaw, pitch, (ear(RIGHT_EYE) + ear(LEFT_EYE)) / 2.0, mouth, float(presence))


class FaceLandmarker:
    """Run the face-mesh model on the square crop around a detected face."""

    def __init__(self, model: Model) -> None:
        """Wrap a loaded face_landmark model (input [1, 192, 192, 3])."""
        expected = (1, INPUT_SIZE, INPUT_SIZE, 3)
        if model.input_shapes and tuple(model.input_shapes[0]) != expected:
            raise InferenceError(f"{model.name} takes {model.input_shapes[0]}, the face mesh needs {expected}")
        self.model = model

    @classmethod
    def from_store(cls, store: ModelStore, accelerator: str = "auto") -> FaceLandmarker:
        """Load face_landmark.tflite from the model store with LiteRT."""
        from inference.backends.litert import LiteRTModel

        return cls(LiteRTModel(store.path(LANDMARK_MODEL), accelerator=accelerator, name=LANDMARK_MODEL))  # type: ignore[arg-type]

    def mesh(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> FaceMesh:
        """The mesh of the face in ``box`` (x0, y0, x1, y1, source pixels) of an RGB frame."""
        rgb = as_rgb(rgb)
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise InferenceError(f"face box {box} is empty")
        side = max(x1 - x0, y1 - y0) * BOX_SCALE
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        # Affine crop: the square around the face → 192x192; outside the frame is black, as in MediaPipe.
        scale = INPUT_SIZE / side
        warp = np.array([[scale, 0, INPUT_SIZE / 2 - cx * scale], [0, scale, INPUT_SIZE / 2 - cy * scale]])
        crop = cv2.warpAffine(rgb, warp, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        tensor = (crop.astype(np.float32) / 255.0)[None]
        outputs = self.model.run(tensor)
        coords = next(o for o in outputs if o.size == NUM_POINTS * 3).reshape(NUM_POINTS, 3).astype(np.float64)
        flag = next((o for o in outputs if o.size == 1), np.array([10.0]))
        presence = float(1.0 / (1.0 + np.exp(-np.clip(float(flag.ravel()[0]), -50, 50))))
        pts = coords.copy()
        pts[:, 0] = (coords[:, 0] - warp[0, 2]) / scale
        pts[:, 1] = (coords[:, 1] - warp[1, 2]) / scale
        pts[:, 2] = coords[:, 2] / scale
        return FaceMesh(pts.astype(np.float32), geometry_of(pts, presence))

"""BlazeFace face detector (MediaPipe short-range and full-range models) with SSD anchor decoding.

The frame is letterboxed to the square model input (aspect ratio kept, padded), normalised to [-1, 1],
and the raw regressors are decoded against SSD anchors exactly as MediaPipe's
``TensorsToDetectionsCalculator`` does (``reverse_output_order``: x, y, w, h, then 6 keypoints), then
blended with MediaPipe's weighted non-maximum suppression and mapped back to source pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from inference.backends.base import Model
from inference.errors import ImageError, InferenceError

if TYPE_CHECKING:
    from inference.store import ModelStore

Variant = Literal["short", "full"]

# MediaPipe's face_detection_{short,full}_range graphs: input size, anchor strides and anchors per
# location. Consecutive layers with the same stride share one grid (2 anchors each for short range).
_SPECS: dict[str, dict] = {
    "short": {"model": "blazeface_short", "size": 128, "strides": [8, 16, 16, 16], "per_layer": 2},
    "full": {"model": "blazeface_full", "size": 192, "strides": [4], "per_layer": 1},
}
RAW_SCORE_CLIP = 100.0
# Measured on the shared photos with short range: no_face's best non-face (a dog) scores 0.58, the
# background faces and subjects of LFW score >= 0.68; 0.65 keeps a margin on both sides.
DEFAULT_SCORE_THRESHOLD = 0.65
# Full range scores lower on both sides: the best non-face of no_face and pedestrians' backgrounds is
# 0.44, while two labelled 44 px faces of multi_face/dlib_faces score 0.63 and 0.64.
DEFAULT_SCORE_THRESHOLDS = {"short": DEFAULT_SCORE_THRESHOLD, "full": 0.6}
NUM_KEYPOINTS = 6


@dataclass(frozen=True, eq=False)
class Detection:
    """One face: box (x0, y0, x1, y1) and keypoints (6, 2) in source pixels, score in [0, 1].

    Keypoints in BlazeFace order: right eye, left eye, nose tip, mouth, right ear, left ear (the
    subject's right/left, i.e. the right eye is on the image's left side for a frontal face).
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


def ssd_anchors(size: int, strides: list[int], per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1] for fixed-size anchors, in the model's output order."""
    centres = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        repeats = 0
        while i < len(strides) and strides[i] == stride:
            repeats += per_layer
            i += 1
        grid = int(np.ceil(size / stride))
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        xy = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(xy, repeats, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """Return a uint8 (H, W, 3) view/copy of a grayscale, RGB or RGBA frame."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        raise ImageError(f"frames must be uint8, got {arr.dtype}: decode with inference.load_image")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 4:
        return np.ascontiguousarray(arr[:, :, :3])
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    raise ImageError(f"frames must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster around the best box is blended by score.

    The blended box and keypoints are the score-weighted mean of the cluster; the score is the best one.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.arange(len(scores))
    out = []
    while remaining.size:
        top = remaining[0]
        overlap = _iou_one(boxes[top], boxes[remaining])
        cluster = remaining[overlap > iou_threshold]
        cluster = cluster if cluster.size else remaining[:1]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        kps = (keypoints[cluster] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, kps, float(scores[top])))
        remaining = remaining[overlap <= iou_threshold]
        if top in remaining:  # only when the cluster was empty (degenerate box)
            remaining = remaining[remaining != top]
    return out


class BlazeFaceDetector:
    """Detect faces in RGB frames with a BlazeFace model."""

    def __init__(
        self,
        model: Model,
        variant: Variant,
        score_threshold: float | None = None,
        iou_threshold: float = 0.3,
        min_face_px: float = 0,
    ) -> None:
        """Wrap a loaded BlazeFace ``model`` of the given ``variant``; thresholds apply per call.

        ``score_threshold`` defaults to the variant's measured one (DEFAULT_SCORE_THRESHOLDS).
        """
        if variant not in _SPECS:
            raise InferenceError(f"BlazeFace variant must be short or full, not {variant!r}")
        spec = _SPECS[variant]
        self.model = model
        self.variant = variant
        self.size = int(spec["size"])
        self.score_threshold = DEFAULT_SCORE_THRESHOLDS[variant] if score_threshold is None else score_threshold
        self.iou_threshold = iou_threshold
        self.min_face_px = min_face_px
        self.anchors = ssd_anchors(self.size, spec["strides"], spec["per_layer"])
        expected = (1, self.size, self.size, 3)
        if model.input_shapes and tuple(model.input_shapes[0]) != expected:
            raise InferenceError(
                f"{model.name} takes input {model.input_shapes[0]}, BlazeFace {variant} needs {expected}: "
                "pass the matching model"
            )

    @classmethod
    def from_store(
        cls, store: ModelStore, variant: Variant = "short", accelerator: str = "auto", **kwargs: float
    ) -> BlazeFaceDetector:
        """Load the BlazeFace model of ``variant`` from the model store with LiteRT."""
        from inference.backends.litert import LiteRTModel

        name = _SPECS[variant]["model"] if variant in _SPECS else str(variant)
        model = LiteRTModel(store.path(name), accelerator=accelerator, name=name)  # type: ignore[arg-type]
        return cls(model, variant, **kwargs)

    def preprocess(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """Letterbox to the model size and normalise; returns (input, scale, pad_x, pad_y)."""
        h, w = rgb.shape[:2]
        if h == 0 or w == 0:
            raise ImageError(f"empty frame of shape {rgb.shape}")
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        resized = rgb
        while resized.shape[1] // 2 >= nw and resized.shape[0] // 2 >= nh:
            # OpenCV's area filter has a fast path for exact halving (640x480 -> 320x240: 0.13 ms,
            # where 640x480 -> 192x144 directly takes 1.1 ms); the remaining < 2x step is bilinear,
            # which does not alias at that ratio. Detections are unchanged on the shared photos.
            rh, rw = resized.shape[:2]
            resized = cv2.resize(resized, (rw // 2, rh // 2), interpolation=cv2.INTER_AREA)
        interp = cv2.INTER_LINEAR if resized is not rgb or scale >= 1 else cv2.INTER_AREA
        resized = cv2.resize(resized, (nw, nh), interpolation=interp)
        pad_x, pad_y = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), dtype=np.float32)
        view = canvas[pad_y:pad_y + nh, pad_x:pad_x + nw]
        np.multiply(resized, np.float32(1.0 / 127.5), out=view, dtype=np.float32)  # one pass, no temporaries
        view -= 1.0
        return canvas[None], scale, float(pad_x), float(pad_y)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB (or grayscale/RGBA) uint8 frame, best score first."""
        rgb = as_rgb(rgb)
        tensor, scale, pad_x, pad_y = self.preprocess(rgb)
        outputs = self.model.run(tensor)
        # Regressors are (1, N, 16), classificators (1, N, 1); pick them by shape, not output order.
        reg = next(o for o in outputs if o.shape[-1] == 4 + 2 * NUM_KEYPOINTS)[0]
        raw = next(o for o in outputs if o.shape[-1] == 1)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw.astype(np.float64), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        reg, scores, anchors = reg[keep], scores[keep], self.anchors[keep]
        # Offsets are in input pixels relative to the anchor centre; fixed-size anchors have w = h = 1.
        s = float(self.size)
        cx = reg[:, 0] / s + anchors[:, 0]
        cy = reg[:, 1] / s + anchors[:, 1]
        bw, bh = reg[:, 2] / s, reg[:, 3] / s
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
        kps = reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) / s + anchors[:, None, :]
        h, w = rgb.shape[:2]
        found = []
        for box, kp, score in weighted_nms(boxes, kps, scores, self.iou_threshold):
            # Normalised letterbox coordinates -> source pixels.
            bx = (box * s - [pad_x, pad_y, pad_x, pad_y]) / scale
            bx = np.clip(bx, 0, [w, h, w, h])
            kp_px = (kp * s - [pad_x, pad_y]) / scale
            if min(bx[2] - bx[0], bx[3] - bx[1]) < max(self.min_face_px, 1e-6):
                continue
            found.append(Detection(
                box=(float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])),
                score=score, keypoints=kp_px.astype(np.float32),
            ))
        found.sort(key=lambda d: d.score, reverse=True)
        return found

"""A cheap face-quality score used to pick the frame of a track worth embedding."""

from __future__ import annotations

import cv2
import numpy as np

from inference.detector import Detection

# A face whose smaller side reaches this many pixels gets the full size score (dlib chips are 150 px).
SIZE_SATURATION_PX = 112.0
# The face crop is resized to this square before the Laplacian, so sharpness does not depend on size.
SHARPNESS_SIDE_PX = 64
# Variance of the Laplacian at which the sharpness score saturates (8-bit gray, 64x64 crop).
SHARPNESS_SATURATION = 600.0
# Nose offset from the eye midpoint (in eye distances) and eye-line tilt at which frontalness reaches 0.
MAX_YAW_OFFSET = 0.5
MAX_ROLL_DEG = 35.0
# A box this close to the frame edge is probably cut off by it (boxes are clipped to the frame).
EDGE_PX = 1.0


def size_score(det: Detection) -> float:
    """Smaller box side over SIZE_SATURATION_PX, capped at 1."""
    return float(np.clip(min(det.width, det.height) / SIZE_SATURATION_PX, 0.0, 1.0))


def sharpness_score(rgb: np.ndarray, det: Detection) -> float:
    """Variance of the Laplacian of the (resized, gray) face crop, scaled to [0, 1]."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in det.box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    crop = rgb[y0:y1, x0:x1]
    gray = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    gray = cv2.resize(gray, (SHARPNESS_SIDE_PX, SHARPNESS_SIDE_PX), interpolation=cv2.INTER_AREA)
    var = float(cv2.Laplacian(gray, cv2.CV_32F).var())
    return float(np.clip(var / SHARPNESS_SATURATION, 0.0, 1.0))


def frontal_score(det: Detection) -> float:
    """1 for a frontal, level face; falls with yaw (nose off the eye midpoint) and roll (eye tilt)."""
    right_eye, left_eye, nose = det.keypoints[0], det.keypoints[1], det.keypoints[2]
    eye_vec = left_eye - right_eye
    eye_dist = float(np.hypot(*eye_vec))
    if eye_dist < 1e-6:
        return 0.0
    mid = (left_eye + right_eye) / 2.0
    # Project the nose offset on the eye line: sideways displacement means the head is turned.
    yaw = abs(float(np.dot(nose - mid, eye_vec / eye_dist))) / eye_dist
    roll = abs(float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0]))))
    yaw_score = 1.0 - min(yaw / MAX_YAW_OFFSET, 1.0)
    roll_score = 1.0 - min(roll / MAX_ROLL_DEG, 1.0)
    return float(yaw_score * roll_score)


def visible_score(rgb: np.ndarray, det: Detection) -> float:
    """1 for a whole face; 0.5 when its box touches the frame edge; 0 when an eye, the nose or the
    mouth lies outside the frame (a partial face, whose chip would be mostly padding)."""
    h, w = rgb.shape[:2]
    core = det.keypoints[:4]
    if (core[:, 0] < 0).any() or (core[:, 1] < 0).any() or (core[:, 0] >= w).any() or (core[:, 1] >= h).any():
        return 0.0
    x0, y0, x1, y1 = det.box
    return 0.5 if x0 <= EDGE_PX or y0 <= EDGE_PX or x1 >= w - EDGE_PX or y1 >= h - EDGE_PX else 1.0


def face_quality(rgb: np.ndarray, det: Detection) -> float:
    """Quality in [0, 1]: the product of size, sharpness, frontalness and visibility. Well under 1 ms."""
    return size_score(det) * sharpness_score(rgb, det) * frontal_score(det) * visible_score(rgb, det)

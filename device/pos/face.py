"""The face step of pay-by-face: one live face, its liveness verdict and the gallery's best members.

Liveness by profile: **depth** on the flagship (the nose must stand out of the face plane in a depth
frame registered to the RGB frame — a photo or a screen is flat), **challenge** on the mobile (a random
sequence of head and face actions from the 468-point mesh, each within CHALLENGE_STEP_S; a still
replayed as video never completes one). The embedding is computed from a frame of the same session
(the depth frame's own RGB frame; the most frontal frame of the challenge) and only after liveness
passed, so a spoof is never even searched.

Depth frames are taken as registered to the RGB frame (the depth SDK aligns them) and scaled from the
RGB frame's size to their own.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from device.pos.checkout import FaceResult
from drivers.camera.base import CameraSource
from drivers.errors import CameraError

FACE_TIMEOUT_S = 20.0  # the whole face step, wall clock, before giving up ("no face seen")
CHALLENGE_STEP_S = 5.0
CHALLENGE_ACTIONS = 2
MIN_FACE_PX = 60
SEARCH_K = 3
NOSE_KEYPOINT = 2  # BlazeFace keypoint order: right eye, left eye, nose tip, mouth, right ear, left ear


def _largest(faces: list[Any]) -> Any | None:
    faces = [f for f in faces if min(f.width, f.height) >= MIN_FACE_PX]
    return max(faces, key=lambda f: f.width * f.height) if faces else None


class FaceCheck:
    """Runs one face step over a camera (and a depth camera on the flagship)."""

    def __init__(self, *, detector: Any, embedder: Any, gallery: Any, method: str, landmarker: Any = None,
                 depth: Any = None, actions: list[str] | None = None, rng: random.Random | None = None) -> None:
        if method not in ("depth", "challenge"):
            raise ValueError(f"liveness method must be depth or challenge, got {method!r}")
        if method == "depth" and depth is None:
            raise ValueError("depth liveness needs a depth camera")
        if method == "challenge" and landmarker is None:
            raise ValueError("challenge liveness needs the face mesh model")
        self.detector, self.embedder, self.gallery = detector, embedder, gallery
        self.method, self.landmarker, self.depth = method, landmarker, depth
        self.actions, self.rng = actions, rng

    def run(self, camera: CameraSource, *, cancelled: Callable[[], bool] = lambda: False,
            on_prompt: Callable[[str], None] = lambda _a: None) -> FaceResult:
        """Read frames until a verdict, the camera ends, FACE_TIMEOUT_S passes or ``cancelled()``."""
        deadline = time.monotonic() + FACE_TIMEOUT_S
        step = self._depth_step if self.method == "depth" else self._challenge_step()
        try:
            while time.monotonic() < deadline and not cancelled():
                frame = camera.read()
                if frame is None:
                    break
                result = step(frame)
                if isinstance(result, FaceResult):
                    return result
                if isinstance(result, str):
                    on_prompt(result)
        except CameraError as err:
            return FaceResult(False, self.method, f"camera: {err}")
        return FaceResult(False, self.method, "no face seen" if not cancelled() else "cancelled")

    def _search(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> list[Any]:
        return self.gallery.search(self.embedder.embed(rgb, box), k=SEARCH_K)

    # -- flagship: depth relief --------------------------------------------------------------------

    def _depth_step(self, frame: Any) -> FaceResult | None:
        from inference.liveness import depth_relief

        face = _largest(self.detector.detect(frame.image))
        if face is None:
            return None
        depth = self.depth.read()
        if depth is None:
            return FaceResult(False, "depth", "the depth camera gave no frame")
        h, w = frame.image.shape[:2]
        dh, dw = depth.depth_mm.shape[:2]
        sx, sy = dw / w, dh / h
        box = (face.box[0] * sx, face.box[1] * sy, face.box[2] * sx, face.box[3] * sy)
        nose = face.keypoints[NOSE_KEYPOINT]
        verdict = depth_relief(depth.depth_mm, box, (nose[0] * sx, nose[1] * sy))
        if not verdict.live:
            return FaceResult(False, "depth", verdict.reason or f"relief {verdict.relief_mm:.1f} mm")
        return FaceResult(True, "depth", f"relief {verdict.relief_mm:.1f} mm", self._search(frame.image, face.box))

    # -- mobile: challenge-response ----------------------------------------------------------------

    def _challenge_step(self) -> Callable[[Any], FaceResult | str | None]:
        from inference.liveness import ChallengeResponse

        if self.actions:
            ch = ChallengeResponse(actions=list(self.actions), step_timeout_s=CHALLENGE_STEP_S)  # type: ignore[arg-type]
        else:
            ch = ChallengeResponse.random(length=CHALLENGE_ACTIONS, rng=self.rng, step_timeout_s=CHALLENGE_STEP_S)
        best: dict[str, Any] = {}

        def step(frame: Any) -> FaceResult | str | None:
            face = _largest(self.detector.detect(frame.image))
            geometry = None
            if face is not None:
                geometry = self.landmarker.mesh(frame.image, face.box).geometry
                # The most frontal frame of the session is the one embedded (kept in RAM only).
                if not best or abs(geometry.yaw) < best["yaw"]:
                    best.update(yaw=abs(geometry.yaw), image=frame.image, box=face.box)
            state = ch.feed(geometry, frame.timestamp)
            if state == "failed":
                return FaceResult(False, "challenge", ch.reason)
            if state == "passed":
                detail = "passed " + ", ".join(ch.actions)
                return FaceResult(True, "challenge", detail, self._search(best["image"], best["box"]))
            return ch.current

        return step

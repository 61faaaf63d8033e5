"""Presentation-attack checks: a random challenge-response from the face mesh, and depth relief.

Challenge-response: the shopper is asked for a random sequence of actions (blink, turn left, turn
right, open mouth), each within a time limit. A still photo (printed, on a screen, or replayed as a
video of identical frames) cannot perform them, so it fails on the first time limit.

Depth relief: on devices with a depth camera, a real face has relief — the nose tip is tens of
millimetres nearer than a plane through the cheeks, forehead and chin. A photo or a screen is a
plane (possibly tilted or gently bent), so the nose sits on that plane. A plane is fitted to the face
ring by least squares, so tilting the photo does not help.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from inference.landmarks import FaceGeometry

Action = Literal["blink", "turn_left", "turn_right", "open_mouth"]
ACTIONS: tuple[Action, ...] = ("blink", "turn_left", "turn_right", "open_mouth")
# Seconds allowed per action.
STEP_TIMEOUT_S = 5.0
# |yaw| at which a turn counts (yaw is +-1 at a full profile; 0.45 is a clear ~30 degree turn).
TURN_YAW = 0.45
# Eyes count as closed below this fraction of the open-eye baseline, and open again above OPEN_RATIO.
BLINK_CLOSED_RATIO = 0.6
BLINK_OPEN_RATIO = 0.85
# Lip gap over mouth width for an open mouth (closed is ~0.0-0.1).
MOUTH_OPEN = 0.35
# Depth: the nose must stand this far in front of the fitted face plane (real faces: 15-40 mm).
MIN_RELIEF_MM = 8.0

State = Literal["pending", "passed", "failed"]


@dataclass
class ChallengeResponse:
    """One liveness session. Feed it a :class:`FaceGeometry` per frame with its timestamp (seconds).

    ``mirrored``: the camera image is mirrored (as on a mirror display), so the subject's left turn
    moves the nose to the image's left.
    """

    actions: list[Action]
    step_timeout_s: float = STEP_TIMEOUT_S
    mirrored: bool = False
    state: State = "pending"
    step: int = 0
    reason: str = ""
    _step_started: float | None = None
    _eye_baseline: list[float] = field(default_factory=list)
    _eyes_closed: bool = False

    @classmethod
    def random(cls, length: int = 3, rng: random.Random | None = None, **kwargs: object) -> ChallengeResponse:
        """A challenge of ``length`` distinct actions in random order (unpredictable for a replay)."""
        rng = rng or random.SystemRandom()
        return cls(actions=rng.sample(list(ACTIONS), k=min(length, len(ACTIONS))), **kwargs)  # type: ignore[arg-type]

    @property
    def current(self) -> Action | None:
        """The action asked for now, or None when the session is over."""
        return self.actions[self.step] if self.state == "pending" and self.step < len(self.actions) else None

    def feed(self, geometry: FaceGeometry | None, timestamp: float) -> State:
        """Advance with one frame (``None`` when no face was seen in it)."""
        if self.state != "pending":
            return self.state
        if self._step_started is None:
            self._step_started = timestamp
        if timestamp - self._step_started > self.step_timeout_s:
            self.state, self.reason = "failed", f"{self.current} not seen within {self.step_timeout_s:g} s"
            return self.state
        if geometry is None:
            return self.state
        if self._done(self.actions[self.step], geometry):
            self.step += 1
            self._step_started = timestamp
            self._eyes_closed = False
            if self.step == len(self.actions):
                self.state = "passed"
        return self.state

    def _done(self, action: Action, g: FaceGeometry) -> bool:
        yaw = -g.yaw if self.mirrored else g.yaw
        if action == "turn_left":
            return yaw >= TURN_YAW
        if action == "turn_right":
            return yaw <= -TURN_YAW
        if action == "open_mouth":
            return g.mouth_open >= MOUTH_OPEN
        # Blink: closed then open again, relative to this face's own open-eye level, measured on
        # near-frontal frames only (a turned head narrows the eye outline).
        if abs(g.yaw) > TURN_YAW:
            return False
        if not self._eyes_closed:
            self._eye_baseline.append(g.eye_open)
            baseline = float(np.median(self._eye_baseline[-15:]))
            if len(self._eye_baseline) >= 2 and g.eye_open < baseline * BLINK_CLOSED_RATIO:
                self._eyes_closed = True
            return False
        baseline = float(np.median(self._eye_baseline[-15:]))
        return g.eye_open >= baseline * BLINK_OPEN_RATIO


@dataclass(frozen=True)
class DepthVerdict:
    """Outcome of the depth-relief check; ``relief_mm`` is how far the nose stands out of the face plane."""

    live: bool
    relief_mm: float
    reason: str


def depth_relief(
    depth_mm: np.ndarray, box: Sequence[float], nose_xy: Sequence[float], min_relief_mm: float = MIN_RELIEF_MM
) -> DepthVerdict:
    """Check the nose-to-face-plane relief in a depth frame registered to the RGB frame.

    ``depth_mm`` is (H, W) distances in millimetres (0 = no reading); ``box`` the face box and
    ``nose_xy`` the nose tip in the same pixel grid.
    """
    depth = np.asarray(depth_mm, dtype=np.float64)
    if depth.ndim != 2:
        return DepthVerdict(False, 0.0, f"depth frame must be HxW, got shape {depth.shape}")
    h, w = depth.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    if bw < 8 or bh < 8:
        return DepthVerdict(False, 0.0, "face too small in the depth frame")
    ys, xs = np.mgrid[0:h, 0:w]
    # Face ring: inside the box but away from its centre (cheeks, forehead, chin), where a plane fits.
    nx, ny = (xs - (x0 + x1) / 2) / (bw / 2), (ys - (y0 + y1) / 2) / (bh / 2)
    r = np.hypot(nx, ny)
    ring = (r > 0.55) & (r < 0.95) & (depth > 0)
    if ring.sum() < 30:
        return DepthVerdict(False, 0.0, "too few depth readings around the face")
    a = np.column_stack([xs[ring], ys[ring], np.ones(int(ring.sum()))])
    coef, *_ = np.linalg.lstsq(a, depth[ring], rcond=None)
    cx, cy = (int(round(v)) for v in nose_xy)
    rad = max(1, int(round(min(bw, bh) * 0.06)))
    patch = depth[max(0, cy - rad):cy + rad + 1, max(0, cx - rad):cx + rad + 1]
    patch = patch[patch > 0]
    if patch.size == 0:
        return DepthVerdict(False, 0.0, "no depth reading at the nose")
    plane_at_nose = coef[0] * cx + coef[1] * cy + coef[2]
    relief = float(plane_at_nose - np.median(patch))  # nearer = smaller depth = positive relief
    if relief >= min_relief_mm:
        return DepthVerdict(True, relief, "")
    return DepthVerdict(False, relief, f"flat: nose {relief:.1f} mm from the face plane (< {min_relief_mm:g} mm)")

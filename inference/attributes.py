"""Shopper attributes: age band and generation, gender, head orientation, clothing colours, PA-100K slot.

Age and gender come from dlib's age predictor and gender classifier converted to ONNX (Cydral, CC0),
on 5-point-aligned face chips with 0.2 padding as their manifest says. Clothing colours are the
dominant named colour of the upper and lower body regions under the face. Attributes of anonymous
shoppers are only ever aggregated (:class:`AttributeCounts`): nothing is kept per person.

PA-100K slot: when a 26-attribute pedestrian model is installed as ``pa100k_attributes.onnx`` in the
model directory (input [N, 3, 256, 192] RGB, ImageNet mean/std; output 26 sigmoid scores in the
PA-100K order of :data:`PA100K_LABELS`), :meth:`AttributeModel.body_attributes` uses it; without the
file it returns None. No such model ships in models.toml (none is published under a licence we can
redistribute), so the slot is filled per deployment.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from inference.detector import as_rgb
from inference.embedder import map_box_to_dlib
from inference.errors import InferenceError

if TYPE_CHECKING:
    from inference.store import ModelStore

AGE_MODEL, GENDER_MODEL, MANIFEST = "age_v1", "gender_v1", "age_gender_manifest"
PA100K_FILE = "pa100k_attributes.onnx"
PA100K_LABELS = (
    "Female", "AgeOver60", "Age18-60", "AgeLess18", "Front", "Side", "Back", "Hat", "Glasses", "HandBag",
    "ShoulderBag", "Backpack", "HoldObjectsInFront", "ShortSleeve", "LongSleeve", "UpperStride",
    "UpperLogo", "UpperPlaid", "UpperSplice", "LowerStripe", "LowerPattern", "LongCoat", "Trousers",
    "Shorts", "Skirt&Dress", "boots",
)
AgeBand = Literal["<18", "18-60", ">60"]
Orientation = Literal["front", "side", "back"]
# |yaw| (face mesh, +-1 at profile) above which a head counts as turned to the side.
SIDE_YAW = 0.5
# BlazeFace keypoints: nose offset from the eye midpoint over the eye distance, for a side view.
SIDE_KEYPOINT_YAW = 0.35


def age_band(age: float) -> AgeBand:
    """The three marketing age bands."""
    return "<18" if age < 18 else ("18-60" if age <= 60 else ">60")


def generation(age: float, today: _dt.date | None = None) -> str:
    """The decade-of-birth label used by the CRM seed: 60后, 70后, 80后, 90后, 00后, 10后 (clamped)."""
    year = (today or _dt.date.today()).year - round(age)
    decade = min(max((year // 10) * 10, 1960), 2010)
    return f"{decade % 100:02d}后"


def head_orientation(face_found: bool, yaw: float | None = None, keypoints: np.ndarray | None = None) -> Orientation:
    """front / side / back: no face on a visible body is a back view; a large yaw is a side view.

    ``yaw`` is the face mesh's; without it, BlazeFace ``keypoints`` (eyes, nose) give a coarser one.
    """
    if not face_found:
        return "back"
    if yaw is None and keypoints is not None:
        right_eye, left_eye, nose = (np.asarray(keypoints[i], dtype=np.float64) for i in range(3))
        eye = left_eye - right_eye
        dist = float(np.hypot(*eye)) or 1e-6
        yaw = float(np.dot(nose - (left_eye + right_eye) / 2, eye / dist)) / dist / SIDE_KEYPOINT_YAW * SIDE_YAW
    return "side" if yaw is not None and abs(yaw) >= SIDE_YAW else "front"


# Named colours by hue (OpenCV hue 0-179) for saturated pixels; achromatic ones by value.
_HUES = ((5, "red"), (20, "orange"), (33, "yellow"), (85, "green"), (100, "cyan"), (130, "blue"),
         (150, "purple"), (170, "pink"), (180, "red"))


def colour_name(rgb_pixels: np.ndarray) -> str:
    """The most common colour name among (N, 3) uint8 RGB pixels."""
    px = np.asarray(rgb_pixels, dtype=np.uint8).reshape(-1, 1, 3)
    if px.shape[0] == 0:
        raise InferenceError("no pixels to name a colour for")
    hsv = cv2.cvtColor(px, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int32)
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.empty(len(h), dtype=object)
    achromatic = (s < 50) | (v < 50)
    names[achromatic & (v < 60)] = "black"
    names[achromatic & (v >= 60) & (v < 180)] = "gray"
    names[achromatic & (v >= 180)] = "white"
    chroma = ~achromatic
    hue_names = np.array([n for _, n in _HUES], dtype=object)
    idx = np.searchsorted(np.array([b for b, _ in _HUES]), h[chroma], side="right")
    names[chroma] = hue_names[np.minimum(idx, len(_HUES) - 1)]
    # Dark oranges and reds are browns.
    brown = chroma & (h < 25) & (v < 150)
    names[brown] = "brown"
    return Counter(names.tolist()).most_common(1)[0][0]


def body_regions(
    frame_shape: tuple[int, ...], face_box: tuple[float, float, float, float]
) -> dict[str, tuple[int, int, int, int]]:
    """Upper- and lower-body boxes under a face, in body proportions (a body is ~7.5 heads tall)."""
    h, w = frame_shape[:2]
    x0, y0, x1, y1 = face_box
    fw, fh = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2

    def clip(bx0: float, by0: float, bx1: float, by1: float) -> tuple[int, int, int, int]:
        return (int(max(0, bx0)), int(max(0, by0)), int(min(w, bx1)), int(min(h, by1)))

    return {
        "upper": clip(cx - 1.0 * fw, y1 + 0.5 * fh, cx + 1.0 * fw, y1 + 2.8 * fh),
        "lower": clip(cx - 0.8 * fw, y1 + 3.6 * fh, cx + 0.8 * fw, y1 + 5.6 * fh),
    }


def clothing_colours(rgb: np.ndarray, face_box: tuple[float, float, float, float]) -> dict[str, str | None]:
    """Dominant colour names of the upper and lower body under ``face_box`` (None when out of frame)."""
    rgb = as_rgb(rgb)
    out: dict[str, str | None] = {}
    for part, (bx0, by0, bx1, by1) in body_regions(rgb.shape, face_box).items():
        region = rgb[by0:by1, bx0:bx1]
        out[part] = colour_name(region.reshape(-1, 3)) if region.size >= 3 * 16 else None
    return out


def person_crop_colours(person_rgb: np.ndarray) -> dict[str, str | None]:
    """Upper and lower colours of a full-body person crop (head at the top), when no face box is known.

    Body proportions: the head takes the top ~15 %, the torso to ~50 %, the legs to ~90 %; the outer
    fifth of each side is mostly background and is left out.
    """
    rgb = as_rgb(person_rgb)
    h, w = rgb.shape[:2]
    x0, x1 = int(w * 0.2), max(int(w * 0.8), int(w * 0.2) + 1)
    regions = {"upper": rgb[int(h * 0.18):int(h * 0.48), x0:x1], "lower": rgb[int(h * 0.55):int(h * 0.88), x0:x1]}
    return {k: colour_name(v.reshape(-1, 3)) if v.size >= 3 * 16 else None for k, v in regions.items()}


@dataclass(frozen=True)
class FaceAttributes:
    """Age estimate and its bands, and gender with its probability."""

    age: float
    age_band: AgeBand
    generation: str
    gender: Literal["female", "male"]
    gender_confidence: float


class AttributeModel:
    """Age and gender from a face; optional PA-100K body attributes."""

    def __init__(self, store: ModelStore) -> None:
        """Load the age and gender ONNX models, their manifest and dlib's 5-point predictor."""
        from inference.backends.onnx import OnnxModel

        try:
            import dlib
        except ImportError as err:
            raise InferenceError("dlib is not installed: `pip install dlib-bin`") from err
        self._dlib = dlib
        manifest = json.loads(store.path(MANIFEST).read_text(encoding="utf-8"))
        self._age_cfg, self._gender_cfg = manifest["models"]["age"], manifest["models"]["gender"]
        self._padding = float(manifest.get("preprocessing", {}).get("face_chip_padding", 0.2))
        self._age = OnnxModel(store.path(AGE_MODEL), name=AGE_MODEL)
        self._gender = OnnxModel(store.path(GENDER_MODEL), name=GENDER_MODEL)
        try:
            self._shape = dlib.shape_predictor(str(store.path("dlib_shape5")))
        except RuntimeError as err:
            raise InferenceError(f"dlib cannot load its shape predictor ({err}): run `joyedge models verify`") from err
        pa = Path(store.root) / PA100K_FILE
        self._pa100k = OnnxModel(pa, name="pa100k") if pa.is_file() else None

    def _chip(self, rgb: np.ndarray, box: tuple[float, float, float, float], cfg: dict[str, Any]) -> np.ndarray:
        size = int(cfg["input"]["shape"][-1])
        # The 5-point predictor was trained on dlib detector boxes: map BlazeFace's first, as the embedder does.
        x0, y0, x1, y1 = (round(v) for v in map_box_to_dlib(box))
        shape = self._shape(rgb, self._dlib.rectangle(x0, y0, x1, y1))
        chip = np.asarray(self._dlib.get_face_chip(rgb, shape, size=size, padding=self._padding), dtype=np.float32)
        norm = cfg["input"]["normalization"]
        chip = (chip - np.asarray(norm["means"], dtype=np.float32)) * float(norm["scale"])
        return chip.transpose(2, 0, 1)[None]

    def face(self, rgb: np.ndarray, box: tuple[float, float, float, float], today: _dt.date | None = None) -> FaceAttributes:
        """Age (expected value over 81 classes), its band and generation, and gender of the face in ``box``."""
        rgb = np.ascontiguousarray(as_rgb(rgb))
        (age_p,) = self._age.run(self._chip(rgb, box, self._age_cfg))
        age = float(np.dot(age_p[0], np.asarray(self._age_cfg["age_weights"], dtype=np.float32)))
        (gender_p,) = self._gender.run(self._chip(rgb, box, self._gender_cfg))
        labels = self._gender_cfg.get("labels", ["female", "male"])
        i = int(np.argmax(gender_p[0]))
        return FaceAttributes(age, age_band(age), generation(age, today), labels[i], float(gender_p[0][i]))  # type: ignore[arg-type]

    def body_attributes(self, body_rgb: np.ndarray) -> dict[str, float] | None:
        """The 26 PA-100K scores of a person crop when the model is installed, else None."""
        if self._pa100k is None:
            return None
        img = cv2.resize(as_rgb(body_rgb), (192, 256), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        img = (img - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        (scores,) = self._pa100k.run(img.transpose(2, 0, 1)[None])
        flat = np.asarray(scores, dtype=np.float32).ravel()
        if flat.size != len(PA100K_LABELS):
            raise InferenceError(f"{PA100K_FILE} gave {flat.size} outputs, the PA-100K slot needs {len(PA100K_LABELS)}")
        return dict(zip(PA100K_LABELS, (float(v) for v in flat), strict=True))


@dataclass
class AttributeCounts:
    """Aggregated attributes of anonymous shoppers: counters only, never a per-person record."""

    shoppers: int = 0
    age_bands: Counter = field(default_factory=Counter)
    generations: Counter = field(default_factory=Counter)
    genders: Counter = field(default_factory=Counter)
    orientations: Counter = field(default_factory=Counter)
    upper_colours: Counter = field(default_factory=Counter)
    lower_colours: Counter = field(default_factory=Counter)

    def add(
        self, face: FaceAttributes | None = None, orientation: str | None = None,
        colours: dict[str, str | None] | None = None,
    ) -> None:
        """Count one anonymous shopper (once per track, not per frame)."""
        self.shoppers += 1
        if face is not None:
            self.age_bands[face.age_band] += 1
            self.generations[face.generation] += 1
            self.genders[face.gender] += 1
        if orientation:
            self.orientations[orientation] += 1
        for part, counter in (("upper", self.upper_colours), ("lower", self.lower_colours)):
            name = (colours or {}).get(part)
            if name:
                counter[name] += 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals."""
        return {"shoppers": self.shoppers, **{k: dict(getattr(self, k)) for k in (
            "age_bands", "generations", "genders", "orientations", "upper_colours", "lower_colours")}}

"""Fit the BlazeFace-box -> dlib-box mapping used before dlib's 5-point shape predictor.

dlib's 5-point predictor (``shape_predictor_5_face_landmarks.dat``) was trained on boxes from dlib's
own frontal face detector, whose boxes sit lower and are a little smaller than BlazeFace's; started
from another convention the predictor lands its points off the eye corners and the aligned chip
shifts. This script pairs BlazeFace boxes (short and full range) with dlib HOG boxes
(``dlib.get_frontal_face_detector()``, upsample 1) found on the same faces and fits, per face in
units of the BlazeFace box size,

    centre_x' = cx + DX * w      centre_y' = cy + DY * h      w' = SX * w      h' = SY * h

as the median over all pairs (the L1 fit of this 4-parameter model; robust to a few odd pairs).
The constants in ``inference.embedder.ALIGN_BOX_MAP`` are the SHORT-RANGE fit: the short range is
the detector of the mirror, of cloud enrolment and of `joyedge eval`, and its boxes differ from the
full range's (the full range's own fit and the pooled one are printed for comparison). Besides box
IoU the script reports what the mapping is for: the mean distance of the 5 predicted points from
those predicted from the HOG box, in eye-corner distances.

The data are DISJOINT from the identification evaluation (lfw_original_10id and the never-enrolled
people of ``device.evaluation.shared_distractors``): the PASCAL photos of multi_face/dlib_faces,
the other multi_face group photos, openface's longoria-cooper, frames of the facenet-pytorch crowd
video and of the two Intel GIFs, and the pedestrian frames. The FIT set and a HELD-OUT set (the
check printed at the end, and the one tests/inference/test_align_box.py uses) are separate photos.

    python bench/fit_align_box.py [--data ../shared/data] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference.detector import BlazeFaceDetector  # noqa: E402
from inference.embedder import ALIGN_BOX_MAP, map_box_to_dlib  # noqa: E402
from inference.image import load_image  # noqa: E402
from inference.store import ModelStore  # noqa: E402
from inference.tracker import iou_matrix  # noqa: E402

# Photos (relative to the shared data folder) used for the fit.
FIT_PHOTOS = [
    *(f"multi_face/dlib_faces/{n}.jpg" for n in (
        "2007_007763", "2008_001009", "2008_001322", "2008_002079", "2008_002470", "2008_002506",
        "2008_004176", "2008_007676", "2009_004587", "bald_guys")),
    "multi_face/deepface_selfie-many-people.jpg", "multi_face/facenet-pytorch_multiface.jpg",
    "multi_face/azure_faces.jpg", "multi_face/azure_celebrities.jpg",
    *(f"pedestrians/{n}.jpg" for n in ("azure_objects", "paddleclas_objects365_02035329")),
]
# (video, every n-th frame, first frame, last frame) for the fit.
FIT_VIDEOS = [("video/facenet-pytorch_video.mp4", 6, 0, 104)]
# Held out from the fit: only for checking the fitted mapping (and in tests).
HELD_OUT_PHOTOS = ["multi_face/deepface_couple.jpg", "openface_examples/longoria-cooper.jpg"]
HELD_OUT_VIDEOS = [("video/intel_head-pose-face-detection-female.gif", 3, 0, 24),
                   ("video/intel_face-demographics-walking.gif", 3, 0, 36)]
HOG_UPSAMPLE = 1
# A BlazeFace box and a HOG box are the same face when their IoU reaches this (the conventions
# differ by ~20-30 % of the area, different faces overlap far less).
PAIR_IOU = 0.35
MIN_FACE_PX = 40
# Crop side around each HOG face, in face sizes (an LFW photo is ~2.3 face widths wide).
CROP_FACTOR = 2.5


def frames(data: Path, videos: list[tuple[str, int, int, int]]) -> list[tuple[str, np.ndarray]]:
    """RGB frames of each (video, step, first, last)."""
    import cv2

    out = []
    for name, step, first, last in videos:
        cap = cv2.VideoCapture(str(data / name))
        i = 0
        while i <= last:
            ok, bgr = cap.read()
            if not ok:
                break
            if i >= first and (i - first) % step == 0:
                out.append((f"{name}#{i}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            i += 1
        cap.release()
        if i == 0:
            raise SystemExit(f"cannot read {data / name}")
    return out


def images(data: Path, photos: list[str], videos: list[tuple[str, int, int, int]]) -> list[tuple[str, np.ndarray]]:
    """(name, RGB) of the photos and video frames."""
    return [(p, load_image(data / p)) for p in photos] + frames(data, videos)


def _crop(rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, float, float]:
    """A square crop CROP_FACTOR x the face around ``box`` (edge-padded), and its origin (x, y)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = CROP_FACTOR * max(box[2] - box[0], box[3] - box[1]) / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    side = int(round(2 * half))
    h, w = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else rgb
    return padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side], float(x0), float(y0)


Pairs = dict[str, tuple[np.ndarray, list[np.ndarray]]]


def pairs(detectors: dict[str, BlazeFaceDetector], imgs: list[tuple[str, np.ndarray]]) -> Pairs:
    """Per detector variant, ((N, 2, 4) matched (BlazeFace box, HOG box), the N crops), faces >= MIN_FACE_PX.

    Each HOG face is cut out with CROP_FACTOR x its size around it (the framing of a kiosk camera or
    an LFW photo, where the short range finds it too) and both BlazeFace ranges run on that crop.
    """
    import dlib

    hog = dlib.get_frontal_face_detector()
    out: dict[str, list] = {v: [] for v in detectors}
    crops: dict[str, list] = {v: [] for v in detectors}
    for _, rgb in imgs:
        hog_boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in hog(rgb, HOG_UPSAMPLE)]
        for hb in (b for b in hog_boxes if b[2] - b[0] >= MIN_FACE_PX):
            crop, ox, oy = _crop(rgb, hb)
            local = (hb[0] - ox, hb[1] - oy, hb[2] - ox, hb[3] - oy)
            for variant, det in detectors.items():
                found = [d.box for d in det.detect(crop)]
                if not found:
                    continue
                ious = iou_matrix([local], found)[0]
                j = int(np.argmax(ious))
                if ious[j] >= PAIR_IOU:
                    out[variant].append((found[j], local))
                    crops[variant].append(crop)
    return {v: (np.asarray(p, dtype=np.float64).reshape(-1, 2, 4), crops[v]) for v, p in out.items()}


def fit(p: np.ndarray) -> tuple[float, float, float, float]:
    """(DX, DY, SX, SY): median relative centre shift and size ratio of HOG boxes against BlazeFace's."""
    b, h = p[:, 0], p[:, 1]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    dx = ((h[:, 0] + h[:, 2]) - (b[:, 0] + b[:, 2])) / 2 / bw
    dy = ((h[:, 1] + h[:, 3]) - (b[:, 1] + b[:, 3])) / 2 / bh
    sx = (h[:, 2] - h[:, 0]) / bw
    sy = (h[:, 3] - h[:, 1]) / bh
    return tuple(round(float(np.median(v)), 4) for v in (dx, dy, sx, sy))  # type: ignore[return-value]


Params = tuple[float, float, float, float]


def mean_iou(p: np.ndarray, params: Params | None) -> float:
    """Mean IoU of (mapped, when ``params``) BlazeFace boxes with their HOG boxes."""
    if not len(p):
        return float("nan")
    boxes = [tuple(b) if params is None else map_box_to_dlib(tuple(b), params) for b in p[:, 0]]
    return float(np.mean([iou_matrix([tuple(h)], [b])[0, 0] for h, b in zip(p[:, 1], boxes, strict=True)]))


def landmark_error(shape, p: np.ndarray, crops: list[np.ndarray], params: Params | None) -> float:
    """Mean distance of the 5 predicted points from a (mapped) BlazeFace box to those from the HOG box.

    In units of the eye-corner distance; this is what moves the aligned chip, so it is the figure
    the mapping must lower.
    """
    import dlib

    def points(img, box):
        x0, y0, x1, y1 = (round(v) for v in box)
        s = shape(img, dlib.rectangle(x0, y0, x1, y1))
        return np.array([(s.part(i).x, s.part(i).y) for i in range(5)], dtype=np.float64)

    errs = []
    for (b, h), img in zip(p, crops, strict=True):
        ref = points(img, tuple(h))
        box = tuple(b) if params is None else map_box_to_dlib(tuple(b), params)
        # Points 0/1 and 2/3 are the outer/inner corners of the two eyes; 4 is under the nose.
        eyes = np.linalg.norm(ref[0:2].mean(0) - ref[2:4].mean(0))
        errs.append(float(np.linalg.norm(points(img, box) - ref, axis=1).mean() / max(eyes, 1e-6)))
    return float(np.mean(errs)) if errs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    store = ModelStore()
    dets = {v: BlazeFaceDetector.from_store(store, variant=v, accelerator="cpu") for v in ("short", "full")}
    import dlib

    shape = dlib.shape_predictor(str(store.path("dlib_shape5")))
    fit_pairs = pairs(dets, images(args.data, FIT_PHOTOS, FIT_VIDEOS))
    held_pairs = pairs(dets, images(args.data, HELD_OUT_PHOTOS, HELD_OUT_VIDEOS))
    candidates: dict[str, Params | None] = {"raw": None}
    candidates["pooled"] = fit(np.concatenate([p for p, _ in fit_pairs.values()]))
    for v in dets:
        candidates[f"{v}_alone"] = fit(fit_pairs[v][0])
    result: dict = {"candidates": candidates, "chosen": "short_alone", "embedder_constants": ALIGN_BOX_MAP,
                    "reproduced": candidates["short_alone"] == tuple(ALIGN_BOX_MAP)}
    for v in dets:
        (fp, fc), (hp, hc) = fit_pairs[v], held_pairs[v]
        result[v] = {"fit_pairs": len(fp), "held_out_pairs": len(hp)}
        for name, params in candidates.items():
            result[v][name] = {
                "fit_iou": round(mean_iou(fp, params), 4), "held_out_iou": round(mean_iou(hp, params), 4),
                "fit_landmark_err": round(landmark_error(shape, fp, fc, params), 4),
                "held_out_landmark_err": round(landmark_error(shape, hp, hc, params), 4),
            }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which alignment and score make the open-set miss go away? The study behind issue 3's one unmet target.

On the issue's split (lfw_original_10id, first K photos enrolled, the rest as probes; the shared
never-enrolled people of ``device.evaluation.shared_distractors`` as non-mated probes) our pipeline
misses one genuine probe at FPIR 1 % (Arnold_Schwarzenegger_0008, sunglasses) while face_recognition
misses none. With 78 never-enrolled photos FPIR 1 % allows no false alarm, so the figure hinges on
one pair: that probe against the strongest never-enrolled probe (clapton-1, glasses, against
Ariel_Sharon). This script computes, from the same photos and the same dlib networks:

- alignment: ``blaze`` (ours: BlazeFace short range, box mapped by ``ALIGN_BOX_MAP``), ``hog`` (the
  peer's: dlib HOG upsample 1 on the whole photo, 126 ms a 640x480 frame), ``hog_roi`` (HOG run only in
  a window around the BlazeFace box, ~5 ms) and ``blaze_ens9`` (5 points averaged over 9 shifted boxes);
- score: ``cos`` (ours: cosine of L2-normalised descriptors) and ``euc`` (the peer's and the network's
  training metric: Euclidean distance of the raw descriptors, as a similarity 1 - d^2/4);
- enrolment templates with and without flip averaging; K = 2, 3, 4;

and for each the open-set FNIR at FPIR 1 %, the margin of the hard pair, and — as the criterion
that does not rest on one pair — 1:1 d' and TAR at FAR 1e-3 over all pairs of the labelled photos
outside the dlib Johns (pre-aligned chips, where alignment plays no part).

    .venv/bin/python bench/open_set_variants.py [--data ../shared/data] [--json]

Takes ~1 min (about 180 photos, each aligned four ways and embedded twice on ONNX Runtime).
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

from device.eval_metrics import OpenSetScores, tar_at_far  # noqa: E402
from device.evaluation import FaceEncoder, list_identities, shared_distractors  # noqa: E402
from inference.embedder import CHIP_PADDING, CHIP_SIZE, map_box_to_dlib  # noqa: E402
from inference.image import load_image  # noqa: E402

FPIR = 0.01
ALIGNMENTS = ("blaze", "hog", "hog_roi", "blaze_ens9")
GALLERY_THRESHOLDS = (0.92, 0.93, 0.94, 0.95)
ROI_FACE_PX = 100  # face width the window is scaled to before HOG (HOG's window is 80 px)


def _chips(enc: FaceEncoder, hog, rgb: np.ndarray) -> dict[str, np.ndarray]:
    import cv2
    import dlib

    emb = enc.embedder
    out: dict[str, np.ndarray] = {}

    def chip(img: np.ndarray, rect) -> np.ndarray:
        return dlib.get_face_chip(img, emb._shape(img, rect), size=CHIP_SIZE, padding=CHIP_PADDING)

    dets = hog(rgb, 1)
    if len(dets):
        out["hog"] = chip(rgb, max(dets, key=lambda r: r.area()))
    found = enc.main_face(rgb)
    if found is None:
        return out
    img, box = found
    img = np.ascontiguousarray(img)
    x0, y0, x1, y1 = map_box_to_dlib(box)
    w, h, cx, cy = x1 - x0, y1 - y0, (x0 + x1) / 2, (y0 + y1) / 2
    mapped = dlib.rectangle(round(x0), round(y0), round(x1), round(y1))
    out["blaze"] = chip(img, mapped)
    # HOG in a window twice the box, scaled so the face is ~ROI_FACE_PX wide; best-overlapping detection.
    wx0, wy0 = int(max(0, cx - w)), int(max(0, cy - h))
    wx1, wy1 = int(min(img.shape[1], cx + w)), int(min(img.shape[0], cy + h))
    f = ROI_FACE_PX / max(w, 1.0)
    win = cv2.resize(img[wy0:wy1, wx0:wx1], None, fx=f, fy=f,
                     interpolation=cv2.INTER_LINEAR if f > 1 else cv2.INTER_AREA)
    best, best_iou = mapped, 0.3
    for d in hog(np.ascontiguousarray(win), 0):
        b = (d.left() / f + wx0, d.top() / f + wy0, d.right() / f + wx0, d.bottom() / f + wy0)
        iw = max(0.0, min(b[2], x1) - max(b[0], x0))
        ih = max(0.0, min(b[3], y1) - max(b[1], y0))
        iou = iw * ih / ((b[2] - b[0]) * (b[3] - b[1]) + w * h - iw * ih)
        if iou > best_iou:
            best, best_iou = dlib.rectangle(*(round(v) for v in b)), iou
    out["hog_roi"] = chip(img, best)
    pts = []
    for dx in (-0.05, 0.0, 0.05):
        for dy in (-0.05, 0.0, 0.05):
            r = dlib.rectangle(round(x0 + dx * w), round(y0 + dy * h), round(x1 + dx * w), round(y1 + dy * h))
            s = emb._shape(img, r)
            pts.append([(s.part(i).x, s.part(i).y) for i in range(5)])
    mean = np.mean(pts, axis=0)
    shape = dlib.full_object_detection(mapped, [dlib.point(round(a), round(b)) for a, b in mean])
    out["blaze_ens9"] = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return out


def _describe(enc: FaceEncoder, hog, path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rgb = np.ascontiguousarray(load_image(path))
    emb = enc.embedder
    return {m: (emb._descriptors([c])[0], emb._descriptors([np.ascontiguousarray(c[:, ::-1])])[0])
            for m, c in _chips(enc, hog, rgb).items()}


def _score(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    if metric == "cos":
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return 1.0 - float(np.sum((a - b) ** 2)) / 4.0


def open_set(desc: dict, people: dict[str, list[Path]], strangers: list[Path], align: str, metric: str,
             k: int, flip: bool) -> dict:
    """FNIR at FPIR 1 % and the hard pair for one variant (per-member max over the K templates)."""
    gallery: dict[str, list[np.ndarray]] = {}
    probes: list[tuple[str, str, np.ndarray | None]] = []
    for person, photos in people.items():
        for i, p in enumerate(photos):
            got = desc[p].get(align)
            if i < k:
                if got is not None:
                    gallery.setdefault(person, []).append((got[0] + got[1]) / 2 if flip else got[0])
            else:
                probes.append((person, p.name, None if got is None else got[0]))

    def best(v: np.ndarray) -> tuple[str, float]:
        per = {m: max(_score(t, v, metric) for t in ts) for m, ts in gallery.items()}
        m = max(per, key=per.get)
        return m, per[m]

    mated = [best(v) if v is not None else ("", float("-inf")) for _, _, v in probes]
    nonmated = sorted(((best(desc[p][align][0])[1], p.name) for p in strangers if align in desc[p]), reverse=True)
    scores = OpenSetScores(np.array([s for _, s in mated]),
                           np.array([m == p for (m, _), (p, _, _) in zip(mated, probes, strict=True)]),
                           np.array([s for s, _ in nonmated]))
    thr = scores.threshold_at_fpir(FPIR)
    misses = [(n, round(s, 4)) for (m, s), (p, n, _) in zip(mated, probes, strict=True) if m != p or s < thr]
    return {"fnir_at_fpir_1pct": round(scores.fnir_at_fpir(FPIR), 4), "threshold": round(thr, 4),
            "top_stranger": [nonmated[0][1], round(nonmated[0][0], 4)], "misses": misses}


def pairs(desc: dict, labels: dict[Path, str], align: str, metric: str) -> dict:
    """1:1 d' and TAR at FAR 1e-3 over every pair of labelled photos."""
    items = [(lab, desc[p][align][0]) for p, lab in labels.items() if align in desc[p]]
    x = np.stack([v for _, v in items])
    lab = np.array([lab for lab, _ in items])
    if metric == "cos":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = u @ u.T
    else:
        s = 1.0 - ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / 4.0
    iu = np.triu_indices(len(x), 1)
    same = (lab[:, None] == lab[None, :])[iu]
    gen, imp = s[iu][same], s[iu][~same]
    d = (gen.mean() - imp.mean()) / np.sqrt((gen.var() + imp.var()) / 2)
    out = {"d_prime": round(float(d), 3), "tar_at_far_1e-3": round(tar_at_far(gen, imp, 1e-3), 4),
           "genuine_pairs": int(gen.size), "impostor_pairs": int(imp.size)}
    if metric == "cos":
        # What a threshold means for a real gallery: a stranger is compared with every member, so the
        # chance that one of N members clears the threshold is ~ 1 - (1 - FAR)^N (pairs independent).
        # With few impostor pairs the FAR is bounded from above (95 %: rule of three when none is seen,
        # normal approximation otherwise), and the FPIR is given for that bound too.
        def upper(k: int) -> float:
            return 3.0 / imp.size if k == 0 else min(1.0, (k + 1.96 * np.sqrt(k)) / imp.size)

        out["far_by_threshold"] = {}
        for t in GALLERY_THRESHOLDS:
            k = int((imp >= t).sum())
            out["far_by_threshold"][f"{t:.2f}"] = {
                "impostors_above": k, "far": k / imp.size, "far_95_upper": upper(k),
                "tar": round(float((gen >= t).mean()), 4),
                **{f"fpir_members_{n}_upper": round(1 - (1 - upper(k)) ** n, 3) for n in (100, 1000, 10000)}}
    return out


def _stranger_label(path: Path) -> str:
    name = path.stem.lower().rstrip("0123456789-_")
    if path.parent.parent.name == "knn_train":
        return path.parent.name
    aliases = {"johnsnow_test": "kit_harington", "alex_lacamoire": "alex_lacamoire", "alex-lacamoire": "alex_lacamoire",
               "obama-720p": "obama", "obama_small": "obama"}
    for key, value in aliases.items():
        if name.startswith(key):
            return value
    return name.split("-")[0].split("_")[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} not found: the shared test data must sit beside the repository")
    import dlib

    enc = FaceEncoder.from_store(variant="short", accelerator="cpu")
    hog = dlib.get_frontal_face_detector()
    people = list_identities(args.data / "lfw_original_10id")
    strangers = shared_distractors(args.data)
    desc = {p: _describe(enc, hog, p) for photos in people.values() for p in photos}
    desc.update({p: _describe(enc, hog, p) for p in strangers})
    labels = {p: person for person, photos in people.items() for p in photos}
    labels.update({p: _stranger_label(p) for p in strangers if "dlib_johns_5id" not in str(p)})
    result: dict = {"open_set": {}, "pairs": {}}
    for align in ALIGNMENTS:
        for metric in ("cos", "euc"):
            result["pairs"][f"{align}/{metric}"] = pairs(desc, labels, align, metric)
            for k in (2, 3, 4):
                for flip in (False, True):
                    key = f"{align}/{metric}/K{k}/{'flip' if flip else 'plain'}"
                    result["open_set"][key] = open_set(desc, people, strangers, align, metric, k, flip)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("1:1 over labelled photos (no Johns):  variant  d'  TAR@FAR1e-3")
    for key, r in result["pairs"].items():
        print(f"  {key:22s} {r['d_prime']:6.3f} {r['tar_at_far_1e-3']:.4f}  ({r['genuine_pairs']}/{r['impostor_pairs']})")
    print("blaze/cos: FAR, TAR and the FPIR bound it implies for a gallery of N members, per threshold")
    for t, r in result["pairs"]["blaze/cos"]["far_by_threshold"].items():
        print(f"  {t}  impostors above {r['impostors_above']}  FAR {r['far']:.1e} (95 % upper {r['far_95_upper']:.1e})"
              f"  TAR {r['tar']:.3f}  FPIR upper: N=100 {r['fpir_members_100_upper']:.2f}"
              f"  N=1000 {r['fpir_members_1000_upper']:.2f}  N=10000 {r['fpir_members_10000_upper']:.2f}")
    print("open set, FNIR at FPIR 1 %:  variant  FNIR  threshold  top stranger  misses")
    for key, r in result["open_set"].items():
        print(f"  {key:30s} {r['fnir_at_fpir_1pct']:.4f} {r['threshold']:.4f} {r['top_stranger']} {r['misses']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

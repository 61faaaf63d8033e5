"""dlib's face ResNet under ONNX Runtime vs dlib itself: equivalence, accuracy, flip averaging, speed.

Run: ``.venv/bin/python bench/embedder_onnx.py [--json]`` (about 1 minute on 2 cores). Everything is
measured in this run on the shared data, 1 thread for both runtimes:

- ``max_abs_diff``: largest difference of any raw 128-D descriptor element, ONNX vs dlib's
  ``compute_face_descriptor``, over the 55 dlib Johns chips and the 100 aligned LFW faces;
- ``rank1_*``: lfw_original_10id, first 3 photos of each person enrolled as one mean template, the
  other 7 probed; ``same_predictions`` says whether both runtimes named the same person every time;
- ``genuine_min`` / ``impostor_max``: cosine of each probe with its own template (minimum) and with
  the other people's templates (maximum); ``separation`` = genuine_min - impostor_max (> 0 means one
  threshold separates them all) and ``d_prime`` (over all pairs), plain and with flip averaging, on
  LFW and on the Johns (5 people x 11 chips, 3 enrolled, 8 probed);
- ``*_ms``: medians per chip or per image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.detector import BlazeFaceDetector
from inference.embedder import FaceEmbedder
from inference.image import load_image
from inference.store import ModelStore

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENROLL = 3


def _median_ms(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _scores(embed, chips: dict[str, list[np.ndarray]]) -> dict[str, float]:
    names = sorted(chips)
    templates = np.stack([embed(chips[n][:ENROLL]).mean(axis=0) for n in names])
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    correct = total = 0
    genuine, impostor, preds = [], [], []
    for i, name in enumerate(names):
        sims = embed(chips[name][ENROLL:]) @ templates.T
        preds += list(np.argmax(sims, axis=1))
        correct += int(np.sum(np.argmax(sims, axis=1) == i))
        total += len(sims)
        genuine += list(sims[:, i])
        impostor += list(np.delete(sims, i, axis=1).ravel())
    gen, imp = np.array(genuine), np.array(impostor)
    return {
        "rank1": correct / total, "genuine_min": float(gen.min()), "impostor_max": float(imp.max()),
        "separation": float(gen.min() - imp.max()),
        # d' = distance of the two score means in pooled standard deviations: uses every pair, not two extremes
        "d_prime": float((gen.mean() - imp.mean()) / np.sqrt((gen.var() + imp.var()) / 2)),
        "preds": preds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()
    store = ModelStore()
    det = BlazeFaceDetector.from_store(store, variant="short", accelerator="cpu")
    onnx = FaceEmbedder.from_store(store, backend="onnx")
    flip = FaceEmbedder.from_store(store, backend="onnx", flip=True)
    ref = FaceEmbedder.from_store(store, backend="dlib")
    lfw_root = DATA / "lfw_original_10id"
    images = {p.name: [load_image(f) for f in sorted(p.glob("*.jpg"))] for p in sorted(lfw_root.iterdir()) if p.is_dir()}
    boxes = {n: [max(det.detect(im), key=lambda d: d.width).box for im in ims] for n, ims in images.items()}
    chips = {n: [onnx.align(im, b) for im, b in zip(ims, boxes[n], strict=True)] for n, ims in images.items()}
    johns = [load_image(f) for f in sorted((DATA / "dlib_johns_5id").glob("*/*.jpg"))]
    all_chips = johns + [c for cs in chips.values() for c in cs]

    raw_ref = ref._descriptors(all_chips)
    raw_onnx = onnx._descriptors(all_chips)
    s_ref, s_onnx, s_flip = _scores(ref.embed_chips, chips), _scores(onnx.embed_chips, chips), _scores(flip.embed_chips, chips)
    john_chips = {p.name: [load_image(f) for f in sorted(p.glob("*.jpg"))]
                  for p in sorted((DATA / "dlib_johns_5id").iterdir()) if p.is_dir()}
    j_plain, j_flip = _scores(onnx.embed_chips, john_chips), _scores(flip.embed_chips, john_chips)
    keys = ("genuine_min", "impostor_max", "separation", "d_prime")

    sample = all_chips[:30]
    flat = [(im, b) for n in images for im, b in zip(images[n], boxes[n], strict=True)][:30]

    def identify(item, emb=onnx):
        im, _ = item
        face = max(det.detect(im), key=lambda d: d.width)
        return emb.embed(im, face.box)

    batch = np.stack(all_chips[:8])
    onnx._run(batch)
    t0 = time.perf_counter()
    for _ in range(5):
        onnx._run(batch)
    batch8 = (time.perf_counter() - t0) / 40 * 1000
    out = {
        "chips_compared": len(all_chips),
        "max_abs_diff": float(np.abs(raw_onnx - raw_ref).max()),
        "rank1_dlib": s_ref["rank1"], "rank1_onnx": s_onnx["rank1"], "rank1_onnx_flip": s_flip["rank1"],
        "same_predictions": s_ref["preds"] == s_onnx["preds"],
        "lfw_plain": {k: s_onnx[k] for k in keys},
        "lfw_flip": {k: s_flip[k] for k in keys},
        "johns_plain": {k: j_plain[k] for k in keys},
        "johns_flip": {k: j_flip[k] for k in keys},
        "embed_chip_dlib_ms": _median_ms(ref.embed_chip, sample[:15]),
        "embed_chip_onnx_ms": _median_ms(onnx.embed_chip, sample),
        "embed_chip_onnx_flip_ms": _median_ms(flip.embed_chip, sample),
        "embed_chip_onnx_batch8_ms": batch8,
        "align_ms": _median_ms(lambda it: onnx.align(*it), flat),
        "identify_image_onnx_ms": _median_ms(identify, flat),
        "identify_image_onnx_flip_ms": _median_ms(lambda it: identify(it, flip), flat),
        "identify_image_dlib_ms": _median_ms(lambda it: identify(it, ref), flat[:10]),
    }
    if not args.json:
        print(f"ONNX Runtime {out['embed_chip_onnx_ms']:.1f} ms/chip vs dlib {out['embed_chip_dlib_ms']:.1f} ms/chip; "
              f"max abs diff {out['max_abs_diff']:.2e} over {out['chips_compared']} chips")
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()

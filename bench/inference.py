"""Inference benchmark against its peers, all in one run on the same frames and photos.

- detect + track on 640x480 frames (BlazeFace full range, the range that finds the small faces) vs
  dlib's HOG detector with upsample 1 and vs the bare BlazeFace inference;
- per-image identify (load, detect, embed, 1:N search) vs the ``face_recognition`` library, with both
  rank-1s and open-set FNIR at FPIR 1 % on lfw_original_10id (3 enrolled) against every other person
  of ../shared/data as never-enrolled;
- 1:N search over 10k / 100k / 1M x 128-D vs faiss IndexFlatIP and vs the memory-bandwidth bound.

    python bench/inference.py [--quick] [--json] [--data ../shared/data]

``--quick`` (< 60 s) uses 5 identities, every other distractor, 30 frames and no 1M gallery.
Peers (bench only, installed by `make bench`): faiss-cpu, face_recognition 1.3.0 --no-deps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Every peer and ours on one thread, as the peer figures were measured (set before numpy loads).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.eval_metrics import OpenSetScores  # noqa: E402
from device.evaluation import FaceEncoder, evaluate_identify, list_identities, shared_distractors  # noqa: E402
from inference.detector import BlazeFaceDetector, as_rgb  # noqa: E402
from inference.store import ModelStore  # noqa: E402
from inference.tracker import Tracker  # noqa: E402

VIDEO = "video/facenet-pytorch_video.mp4"
FPIR = 0.01


def _median_ms(fn, items) -> float:
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000.0)
    return float(statistics.median(times))


def frames_640x480(data: Path, count: int) -> list[np.ndarray]:
    """``count`` RGB frames of the crowd video, centre-cropped to 4:3 and resized to 640x480."""
    import cv2

    cap = cv2.VideoCapture(str(data / VIDEO))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        h, w = bgr.shape[:2]
        cw = h * 4 // 3
        x0 = (w - cw) // 2
        rgb = cv2.cvtColor(bgr[:, x0:x0 + cw], cv2.COLOR_BGR2RGB)
        frames.append(cv2.resize(rgb, (640, 480), interpolation=cv2.INTER_AREA))
    cap.release()
    if not frames:
        raise SystemExit(f"cannot read frames from {data / VIDEO}")
    return frames


def _bench_blazeface(det: BlazeFaceDetector, frames: list[np.ndarray]) -> dict:
    """Ours (detect + track) and the bare model timed alternately per frame, so load drift hits both."""
    tracker = Tracker()
    det.detect(frames[0])  # warm-up
    tensor = det.preprocess(as_rgb(frames[0]))[0]
    ours, bare, faces = [], [], 0
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        det.model.run(tensor)
        t1 = time.perf_counter()
        found = det.detect(frame)
        tracker.update(found, float(i))
        t2 = time.perf_counter()
        bare.append((t1 - t0) * 1000.0)
        ours.append((t2 - t1) * 1000.0)
        faces += len(found)
    return {"ms": round(statistics.median(ours), 2), "bare_ms": round(statistics.median(bare), 2), "faces": faces}


def bench_detect(store: ModelStore, frames: list[np.ndarray]) -> dict:
    """Detect + track frames/s (short and full range) vs HOG upsample 1 and the bare model."""
    import dlib

    out: dict = {"frames": len(frames)}
    for variant in ("short", "full"):
        out[variant] = _bench_blazeface(BlazeFaceDetector.from_store(store, variant=variant, accelerator="cpu"),
                                        frames)
    hog = dlib.get_frontal_face_detector()
    hog_ms = _median_ms(lambda f: hog(f, 1), frames)
    out["hog_upsample1"] = {"ms": round(hog_ms, 2), "faces": sum(len(hog(f, 1)) for f in frames[:10])}
    out["hog_upsample1"]["faces_first10"] = out["hog_upsample1"].pop("faces")
    out["detect_vs_hog"] = round(hog_ms / out["full"]["ms"], 2)
    out["detect_overhead"] = round(out["full"]["ms"] / out["full"]["bare_ms"], 3)
    out["detect_vs_hog_short"] = round(hog_ms / out["short"]["ms"], 2)
    out["detect_overhead_short"] = round(out["short"]["ms"] / out["short"]["bare_ms"], 3)
    return out


def face_recognition_run(people: dict[str, list[Path]], distractors: list[Path], k: int) -> dict:
    """The face_recognition library on the same split: HOG upsample 1, 5-point, no jitter, min distance."""
    import face_recognition as fr

    def encode(path: Path):
        img = fr.load_image_file(str(path))
        locs = fr.face_locations(img, number_of_times_to_upsample=1, model="hog")
        if not locs:
            return None
        big = max(locs, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        return fr.face_encodings(img, [big])[0]

    times: list[float] = []
    rows: list = []
    probes: list = []
    nonmated: list[float] = []
    misses = 0
    for person, images in people.items():
        for i, path in enumerate(images):
            t0 = time.perf_counter()
            enc = encode(path)
            if i >= k:
                times.append((time.perf_counter() - t0) * 1000.0)
            if enc is None:
                misses += 1
                if i >= k:  # a probe without a face is a miss, as in ours
                    probes.append((person, None))
            elif i < k:
                rows.append((person, enc))
            else:
                probes.append((person, enc))
    names = sorted({p for p, _ in rows})
    mat = np.stack([e for _, e in rows])
    owner = np.array([names.index(p) for p, _ in rows])

    def best(enc):
        if enc is None:
            return "", float("-inf")
        d = np.linalg.norm(mat - enc, axis=1)
        per = np.array([d[owner == i].min() for i in range(len(names))])
        i = int(np.argmin(per))
        return names[i], -float(per[i])  # higher = more alike, as for ours

    mated = [best(e) for _, e in probes]
    for path in distractors:
        enc = encode(path)
        if enc is None:
            misses += 1
        else:
            nonmated.append(best(enc)[1])
    scores = OpenSetScores(np.array([s for _, s in mated]),
                           np.array([m == p for (m, _), (p, _) in zip(mated, probes, strict=True)]),
                           np.array(nonmated))
    return {"scores": scores, "ms": statistics.median(times), "failures_to_detect": misses,
            "fpir_at_default_tolerance": scores.fpir_at(-0.6)}


def bench_identify(store: ModelStore, data: Path, quick: bool) -> dict:
    """Ours vs face_recognition on lfw_original_10id (3 enrolled) + the shared never-enrolled people."""
    k = 3
    people = list_identities(data / "lfw_original_10id")
    distractors = shared_distractors(data)
    if quick:
        people = dict(list(people.items())[:5])
        distractors = distractors[::2]
    with tempfile.TemporaryDirectory(prefix="joyedge-bench-") as tmp:
        # The split as a folder of links, so `joyedge eval identify` reads exactly the same photos.
        for person in people:
            os.symlink(data / "lfw_original_10id" / person, Path(tmp) / person)
        encoder = FaceEncoder.from_store(store, variant="short", accelerator="cpu")
        run = evaluate_identify(encoder, Path(tmp), k, distractors)
    ours_ms = statistics.median(run.probe_ms) + statistics.median(run.search_ms)
    peer = face_recognition_run(people, distractors, k)
    theirs: OpenSetScores = peer["scores"]
    fnir_ours = run.open_set.fnir_at_fpir(FPIR)
    fnir_theirs = theirs.fnir_at_fpir(FPIR)
    return {
        "identities": len(people), "distractor_photos": len(distractors),
        "mated_probes": int(run.open_set.mated_scores.size), "nonmated_probes": int(run.open_set.nonmated_scores.size),
        "identify_ms_ours": round(ours_ms, 1), "identify_ms_face_recognition": round(peer["ms"], 1),
        "identify_vs_face_recognition": round(ours_ms / peer["ms"], 3),
        "rank1_ours": round(run.open_set.rank1(), 4), "rank1_face_recognition": round(theirs.rank1(), 4),
        "fnir_at_fpir_1pct_ours": round(fnir_ours, 4), "fnir_at_fpir_1pct_face_recognition": round(fnir_theirs, 4),
        "threshold_ours": round(run.open_set.threshold_at_fpir(FPIR), 4),
        "failures_to_detect_ours": len(run.failures_to_detect),
        "failures_to_detect_face_recognition": peer["failures_to_detect"],
        "face_recognition_fpir_at_tolerance_0.6": round(peer["fpir_at_default_tolerance"], 4),
        "embedder_backend": str(getattr(encoder.embedder, "backend", "dlib")),
    }


def bench_search(sizes: list[int]) -> dict:
    """bench/search.py's measurement (same process) at each size, faiss included."""
    spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # Interleaved with faiss (ABAB), same probes, one thread; asserts top-1 equal to faiss on every probe.
    rows = {f"{n // 1000}k" if n < 10**6 else f"{n // 10**6}M": mod.bench(n, repeat=200 if n < 10**6 else 40)
            for n in sizes}
    out: dict = {"sizes": {k: {kk: round(v, 3) for kk, v in r.items()} for k, r in rows.items()}}
    r100 = rows.get("100k")
    if r100:
        out["search_100k_vs_bandwidth"] = round(r100["search_vs_bandwidth"], 3)
    for key, r in rows.items():
        if "search_vs_faiss" in r:
            out[f"search_{key}_vs_faiss"] = round(r["search_vs_faiss"], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, under 60 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    for peer in ("faiss", "face_recognition"):
        if importlib.util.find_spec(peer) is None:
            raise SystemExit(f"peer {peer} is not installed: run `make bench` (installs the bench peers)")
    t0 = time.perf_counter()
    store = ModelStore()
    result: dict = {"quick": args.quick}
    det = bench_detect(store, frames_640x480(args.data, 30 if args.quick else 100))
    ident = bench_identify(store, args.data, args.quick)
    search = bench_search([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    result.update({k: det[k] for k in ("detect_vs_hog", "detect_overhead")})
    result.update({k: ident[k] for k in ("identify_vs_face_recognition", "rank1_ours", "rank1_face_recognition",
                                         "fnir_at_fpir_1pct_ours", "fnir_at_fpir_1pct_face_recognition")})
    result.update({k: search[k] for k in ("search_100k_vs_bandwidth", "search_100k_vs_faiss") if k in search})
    result["detail"] = {"detect": det, "identify": ident, "search": search}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""1:N gallery search vs faiss IndexFlatIP and vs the memory-bandwidth bound, measured in the same run.

The plain search is a float32 matrix-vector product over N x 128 templates plus a per-member max: it
reads the gallery once, as faiss flat does, so the two tie. From 20k rows the gallery scans an int8
copy (a quarter of the bytes) and rescores exactly the few rows its error bound keeps
(device/gallery_scan.py; below 20k rows the float32 path is used). Peers: faiss IndexFlatIP on the
same float32 matrix, and the time to copy those bytes (np.copyto). Ours, faiss and our float32-only path run interleaved (ABC ABC ...) on the
same probes, all on one thread (OMP/OpenBLAS/MKL, faiss, ONNX Runtime), medians reported. Every
probe's top-1 member must equal faiss's (asserted).

    python bench/search.py [--sizes 10000,100000,1000000] [--repeat 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads: every peer single-threaded

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from device.gallery import Gallery  # noqa: E402

PROBES = 50  # distinct probes, cycled: half gallery members (a match), half strangers


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MB; 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e3
    except OSError:
        pass
    return 0.0


def memory(n: int) -> dict[str, float]:
    """What a device's gallery of n templates costs in RAM: resident memory before the load, after it
    (float32 matrix) and after the int8 copy is built, measured on a gallery of its own."""
    import gc

    rng = np.random.default_rng(1)
    gc.collect()
    before = rss_mb()  # the rows below are views of one matrix, which the load copies; then it is freed
    vecs = rng.normal(size=(n, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [(f"M{i:07d}", vecs[i], 1.0) for i in range(n)]
    del vecs
    gallery = Gallery()
    gallery.load(rows)
    del rows
    gc.collect()
    loaded = rss_mb()
    gallery.search(rng.normal(size=128).astype(np.float32))  # builds the int8 copy
    gc.collect()
    built = rss_mb()
    out = {"rss_load_mb": loaded - before, "rss_int8_mb": built - loaded,
           "matrix_mb": gallery._matrix.nbytes / 1e6, "compact_mb": gallery.compact_bytes / 1e6}
    del gallery
    gc.collect()
    return out


def bench(n: int, repeat: int = 200) -> dict[str, float]:
    """Search (two-stage, float32-only, faiss) and copy times for n members with one template each."""
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [(f"M{i:07d}", vecs[i], 1.0) for i in range(n)]
    ours, plain = Gallery(), Gallery(scan_min_rows=None)
    ours.load(rows)
    plain.load(rows)
    del rows
    members = vecs[rng.integers(0, n, PROBES // 2)] + 0.05 * rng.normal(size=(PROBES // 2, 128)).astype(np.float32)
    strangers = rng.normal(size=(PROBES - PROBES // 2, 128)).astype(np.float32)
    probes = np.concatenate([members, strangers]).astype(np.float32)
    t0 = time.perf_counter()
    ours.search(probes[0])  # builds the int8 copy (lazily, on the first search after a load)
    build_s = time.perf_counter() - t0
    src = ours._matrix  # the bytes the float32 search reads
    dst = np.empty_like(src)
    fns = {"ours": lambda p: ours.search(p, k=2), "plain": lambda p: plain.search(p, k=2),
           "copy": lambda p: np.copyto(dst, src)}
    index = None
    try:
        import faiss  # optional peer: pip install faiss-cpu

        faiss.omp_set_num_threads(1)
        index = faiss.IndexFlatIP(128)
        index.add(src)
        fns["faiss"] = lambda p: index.search(p[None, :], 2)
    except ImportError:
        pass
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeat + 1):
        p = probes[r % PROBES]
        order = names if r % 2 == 0 else names[::-1]  # ABAB...: alternate who runs first
        for name in order:
            t = time.perf_counter()
            fns[name](p)
            if r:  # the first round is a warm-up
                times[name].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = {"n": n, "search_ms": med["ours"] * 1e3, "plain_ms": med["plain"] * 1e3, "copy_ms": med["copy"] * 1e3,
           "bandwidth_gbs": src.nbytes / med["copy"] / 1e9, "search_vs_bandwidth": med["ours"] / med["copy"],
           "plain_vs_bandwidth": med["plain"] / med["copy"], "build_ms": build_s * 1e3,
           "compact_mb": ours.compact_bytes / 1e6, "matrix_mb": src.nbytes / 1e6}
    mismatched = 0
    for p in probes:
        a, b = ours.search(p, k=2), plain.search(p, k=2)
        assert [c.member_id for c in a] == [c.member_id for c in b], "two-stage and float32 disagree"
        assert max(abs(x.score - y.score) for x, y in zip(a, b, strict=True)) < 1e-6
        if index is not None:
            _, ids = index.search(p[None, :], 1)
            mismatched += a[0].member_id != f"M{int(ids[0, 0]):07d}"
    if index is not None:
        assert mismatched == 0, f"top-1 differs from faiss on {mismatched} of {PROBES} probes"
        out["faiss_ms"] = med["faiss"] * 1e3
        out["search_vs_faiss"] = med["ours"] / med["faiss"]
        out["plain_vs_faiss"] = med["plain"] / med["faiss"]
        out["top1_equal_faiss"] = float(PROBES)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [bench(int(s), args.repeat) | memory(int(s)) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            extra = (f"  faiss {r['faiss_ms']:.3f} ms: ours/faiss x{r['search_vs_faiss']:.2f} "
                     f"(float32-only x{r['plain_vs_faiss']:.2f})") if "faiss_ms" in r else ""
            print(f"N={r['n']:>8}: search {r['search_ms']:.3f} ms (float32-only {r['plain_ms']:.3f}), copy "
                  f"{r['copy_ms']:.2f} ms ({r['bandwidth_gbs']:.1f} GB/s), search/copy x{r['search_vs_bandwidth']:.2f},"
                  f" int8 copy {r['compact_mb']:.1f} MB built in {r['build_ms']:.0f} ms{extra}")
            print(f"           RAM: gallery +{r['rss_load_mb']:.0f} MB resident (matrix {r['matrix_mb']:.0f} MB),"
                  f" int8 copy +{r['rss_int8_mb']:.0f} MB resident ({r['compact_mb']:.0f} MB of arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

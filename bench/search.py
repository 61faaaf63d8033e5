"""1:N gallery search against the memory-bandwidth bound, measured in the same run.

The gallery search is a matrix-vector product over N x 128 float32 templates plus a per-member
max. It cannot beat reading the gallery once, so its peer is the time to copy the same bytes
(np.copyto, measured here) and, where installed, faiss IndexFlatIP on the same matrix.

    python bench/search.py [--sizes 10000,100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from device.gallery import Gallery


def _median_s(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(n: int, repeat: int = 30) -> dict[str, float]:
    """Search and copy times for a gallery of n members with one template each."""
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, 128)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    g = Gallery()
    g.load([(f"M{i:07d}", vecs[i], 1.0) for i in range(n)])
    probe = vecs[n // 2]
    search_s = _median_s(lambda: g.search(probe, k=2), repeat)
    src = g._matrix  # the same bytes the search reads
    dst = np.empty_like(src)
    copy_s = _median_s(lambda: np.copyto(dst, src), repeat)
    out = {"n": n, "search_ms": search_s * 1e3, "copy_ms": copy_s * 1e3,
           "bandwidth_gbs": src.nbytes / copy_s / 1e9, "search_vs_bandwidth": search_s / copy_s}
    try:
        import faiss  # optional peer: pip install faiss-cpu

        index = faiss.IndexFlatIP(128)
        index.add(src)
        faiss_s = _median_s(lambda: index.search(probe[None, :], 2), repeat)
        out["faiss_ms"] = faiss_s * 1e3
        out["search_vs_faiss"] = search_s / faiss_s
    except ImportError:
        pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [bench(int(s)) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            extra = f"  faiss {r['faiss_ms']:.2f} ms (x{r['search_vs_faiss']:.2f})" if "faiss_ms" in r else ""
            print(f"N={r['n']:>8}: search {r['search_ms']:.2f} ms, copy {r['copy_ms']:.2f} ms "
                  f"({r['bandwidth_gbs']:.1f} GB/s), search/copy x{r['search_vs_bandwidth']:.2f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

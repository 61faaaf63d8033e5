"""Exact two-stage 1:N search: an int8 scan over a compact copy, then exact rescoring of a few rows.

Why: the float32 search reads 512 bytes per template and is bound by memory bandwidth, exactly like
faiss IndexFlatIP, so the two tie. The compact copy is 128 bytes per template (int8, +25 % RAM); the
scan over it (:mod:`inference.int8_gemv`) reads 4x fewer bytes.

Exact, not approximate. Each dimension j is quantised with its own offset m_j and step s_j over the
gallery's range: x_ij = m_j + s_j c_ij + e_ij, |e_ij| <= s_j / 2. The probe, folded with the steps,
q'_j = q_j s_j, is quantised to q'_j = t p_j + d_j (|p_j| <= 127). Then

    x_i . q  =  sum_j m_j q_j  +  t (c_i . p)  +  (c_i . d  +  e_i . q)
                 (constant)      (int8 kernel)      (error)

and |error| <= bound = min(sum_j E_j |q_j|, max_i ||e_i|| ||q||) + min(sum_j C_j |d_j|, max_i ||c_i|| ||d||)
(+ the kernel's float rounding, `Int8Gemv.error_bound`, and a float32 slack), where E_j, C_j are the largest |e_ij|, |c_ij| -- all
known when the copy is built, so the bound is computed per probe and holds for every row. A row can
then reach a weighted score >= L only if w_i * coarse_i + |w_i| * bound >= L. L is an EXACT score (the
k-th best member of a first guess, rescored), so one bound suffices, not two. Every member whose upper
bound reaches L is rescored exactly and the top-k is chosen among them by the same rule as the plain
path: the result is the brute-force result.

"Exact" scores are float64 sums of the float32 products, rounded to float32: the correctly rounded dot
product, and the same value for the same row wherever it sits (BLAS sgemv is not: a row's float32
score depends on its position in the kernel's blocks, by an ulp). The plain path keeps float32 BLAS
scores, which differ from these by ~1e-7.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.int8_gemv import Int8Gemv

# Galleries with fewer template rows are searched by the plain float32 product: there the fixed
# ~0.1-0.3 ms of the kernel call and the extra numpy passes eat the saving (at 10k rows the two paths
# tie unloaded and the float32 one wins under load; from ~20k rows the int8 scan wins clearly).
SCAN_MIN_ROWS = 20_000
# When more members than this fraction must be rescored (a gallery of near-duplicates), scanning the
# float32 matrix once is cheaper than gathering them: the search takes the plain path.
MAX_RESCORE_FRACTION = 0.05
RESCORE_MIN = 256  # ... but up to this many members are always rescored (a few microseconds each)
# Float32 rounding of the coarse score, of the exact score and of the weighted upper bound; scores
# are at most ~1 in magnitude (unit rows, unit probe), so 2e-6 is ten times the worst rounding.
SLACK = 2e-6
SMALL_K = 8  # up to this many members are picked by repeated argmax instead of a partition
_CHUNK = 8192  # rows quantised at a time: float64 temporaries stay in cache, bounded for 1M rows


def top_members(best: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries, best first; equal scores go to the lower index (as np.argmax)."""
    k = min(k, len(best))
    if k <= SMALL_K:
        # k argmax passes over N floats (~10 us each at 100k) beat a partition (~250 us).
        top = np.empty(k, dtype=np.int64)
        saved = np.empty(k, dtype=best.dtype)
        for j in range(k):
            top[j] = int(np.argmax(best))
            saved[j] = best[top[j]]
            best[top[j]] = -np.inf
        best[top] = saved  # restored: callers keep using `best`
        return top
    kth = np.partition(best, len(best) - k)[len(best) - k]
    idx = np.flatnonzero(best >= kth)
    return idx[np.argsort(-best[idx], kind="stable")[:k]]


def exact_scores(matrix: np.ndarray, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 dot products of `matrix[rows]` with `q` (float64 sums of exact products)."""
    return (matrix[rows].astype(np.float64) * q.astype(np.float64)).sum(axis=1).astype(np.float32)


def member_rows(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All rows of the members [starts[i], ends[i]) concatenated, and each member's offset into them."""
    lengths = ends - starts
    offsets = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    rows = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return rows, offsets


@dataclass(frozen=True)
class CompactCopy:
    """The int8 copy of one float32 gallery matrix, its quantisation constants and its kernel."""

    matrix: np.ndarray  # the float32 matrix it was built from (identity = freshness)
    offset: np.ndarray  # m_j, float64
    step: np.ndarray  # s_j, float64
    err_abs: np.ndarray  # E_j = max_i |e_ij|
    err_norm: float  # max_i ||e_i||
    code_abs: np.ndarray  # C_j = max_i |c_ij|
    code_norm: float  # max_i ||c_i||
    kernel: Int8Gemv

    @property
    def nbytes(self) -> int:
        """RAM of the int8 codes (ONNX Runtime holds them pre-packed)."""
        return int(self.matrix.shape[0] * self.matrix.shape[1])

    @classmethod
    def build(cls, matrix: np.ndarray) -> CompactCopy:
        """Quantise `matrix` per dimension and build its kernel (raises KernelUnavailableError)."""
        lo = matrix.min(axis=0).astype(np.float64)
        hi = matrix.max(axis=0).astype(np.float64)
        offset = (lo + hi) / 2
        step = (hi - lo) / 254  # codes in [-127, 127]
        step[step == 0] = 1.0  # a constant dimension: code 0, error 0
        n, dims = matrix.shape
        codes = np.empty((n, dims), dtype=np.int8)
        inv = 1.0 / step
        err_abs, code_abs = np.zeros(dims), np.zeros(dims)
        err_norm = code_norm = 0.0
        for a in range(0, n, _CHUNK):  # in place, float64: the errors must be exact, not float32-rounded
            e = matrix[a:a + _CHUNK].astype(np.float64)
            e -= offset
            c = e * inv
            np.rint(c, out=c)
            np.clip(c, -127, 127, out=c)
            codes[a:a + _CHUNK] = c
            e -= c * step  # e = x - (m + s c)
            err_abs = np.maximum(err_abs, np.maximum(e.max(axis=0), -e.min(axis=0)))
            code_abs = np.maximum(code_abs, np.maximum(c.max(axis=0), -c.min(axis=0)))
            err_norm = max(err_norm, float(np.sqrt(np.einsum("ij,ij->i", e, e).max())))
            code_norm = max(code_norm, float(np.sqrt(np.einsum("ij,ij->i", c, c).max())))
        return cls(matrix, offset, step, err_abs, err_norm, code_abs, code_norm, Int8Gemv(codes))

    def coarse(self, q: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """Coarse scores minus a constant (float32, own array), that constant, and the bound on |exact - coarse|.

        None when the probe cannot be quantised (zero or not finite): the caller searches plainly.
        """
        q64 = q.astype(np.float64)
        folded = q64 * self.step
        amax = float(np.abs(folded).max())
        if not np.isfinite(amax) or amax == 0.0:
            return None
        scale = amax / 127
        p = np.clip(np.rint(folded / scale), -127, 127)
        if float(np.abs(p).max()) != 127.0:  # the kernel re-quantises by max |p|: it must be exact
            return None
        d = folded - scale * p
        abs_q = np.abs(q64)
        norm_q = float(np.sqrt(q64 @ q64))
        bound = (min(float(self.err_abs @ abs_q), self.err_norm * norm_q)
                 + min(float(self.code_abs @ np.abs(d)), self.code_norm * float(np.sqrt(d @ d)))
                 + Int8Gemv.error_bound(p, scale) + SLACK)
        return self.kernel(p, scale), float(self.offset @ q64), bound


def search(copy: CompactCopy, weights: np.ndarray, unit_weights: bool, starts: np.ndarray, q: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Top-k members (indices into `starts`), their exact weighted scores and best rows; None = search plainly.

    `q` is the unit float32 probe; `copy.matrix` rows are grouped into members starting at `starts`.
    """
    matrix = copy.matrix
    got = copy.coarse(q)
    if got is None:
        return None
    upper, const, bound = got
    n, members = len(upper), len(starts)
    if unit_weights:
        upper += np.float32(const + bound)  # one pass: coarse score + bound
    else:
        upper += np.float32(const)
        upper *= weights
        upper += np.abs(weights) * np.float32(bound)
    ub = upper if members == n else np.maximum.reduceat(upper, starts)
    # A first guess: the k best upper bounds, rescored exactly; the worst of them is a floor L that
    # the true k-th best member reaches, so only members whose upper bound reaches L can be in the top-k.
    guess = top_members(ub, k)
    floor = float(_member_best(matrix, weights, unit_weights, starts, n, guess, q)[0].min())
    cand = np.flatnonzero(ub >= floor)
    if len(cand) > max(MAX_RESCORE_FRACTION * members, RESCORE_MIN, k):
        return None
    best, rows = _member_best(matrix, weights, unit_weights, starts, n, cand, q)
    top = top_members(best, k)  # candidates are in member order, so ties break as in the plain path
    return cand[top], best[top], rows[top]


def _member_best(matrix: np.ndarray, weights: np.ndarray, unit_weights: bool, all_starts: np.ndarray, n: int,
                 which: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best exact weighted score of the members `which` (sorted) and the row giving it (first one on ties)."""
    starts = all_starts[which]
    nxt = which + 1
    ends = np.where(nxt < len(all_starts), all_starts[np.minimum(nxt, len(all_starts) - 1)], n)
    rows, offsets = member_rows(starts, ends)
    sims = exact_scores(matrix, rows, q)
    if not unit_weights:
        sims *= weights[rows]
    if len(rows) == len(starts):  # one template per member: nothing to reduce
        return sims, rows
    best = np.maximum.reduceat(sims, offsets)
    # First row of each member reaching its max: the plain path's np.argmax over the member's slice.
    idx = np.flatnonzero(sims == np.repeat(best, ends - starts))  # every member has at least one hit
    owner = np.repeat(np.arange(len(starts)), ends - starts)[idx]
    first = idx[np.concatenate([[True], owner[1:] != owner[:-1]])]
    return best, rows[first]

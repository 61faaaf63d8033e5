"""The site's face gallery in RAM and the vectorised 1:N search over it.

Templates are decrypted from the replica into one float32 matrix (rows L2-normalised), so a
search is a single matrix-vector product plus a per-member max: memory-bandwidth bound, ~2 ms
for 10^5 members on one core. From `gallery_scan.SCAN_MIN_ROWS` rows on, the search scans an int8
copy first and rescores exactly only the rows its error bound cannot rule out (same results, a
quarter of the bytes: see device/gallery_scan.py). Nothing here is ever written back to disk.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from device import gallery_scan
from device.gallery_scan import CompactCopy, top_members
from inference.int8_gemv import KernelUnavailableError
from sync.replica import Replica

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A member and the best weighted similarity of any of their templates to the probe."""

    member_id: str
    score: float
    template_id: str = ""  # the member's best-matching template ("" when rows were loaded without ids)


class Gallery:
    """Templates grouped by member; `search` returns the top-k members by similarity."""

    def __init__(self, scan_min_rows: int | None = -1, build_in_background: bool = False) -> None:
        """`scan_min_rows`: rows from which the int8 two-stage search is used (-1: the module default
        `gallery_scan.SCAN_MIN_ROWS`; None: never, float32 only). Results are the same either way.

        `build_in_background`: after a load or sync delta the int8 copy is rebuilt on a background
        thread while searches use float32 (a device: building it takes ~0.5 s at 100k rows, seconds at
        1M, which a face at the mirror must not wait for); otherwise the first large search builds it.
        """
        self._scan_min_rows = gallery_scan.SCAN_MIN_ROWS if scan_min_rows == -1 else scan_min_rows
        self._background = build_in_background
        self._building: threading.Thread | None = None
        self._compact: CompactCopy | None = None  # built lazily by the first large search after a change
        self._compact_failed = False  # the kernel is unusable here: float32 from now on
        self._build_lock = threading.Lock()
        self._lock = threading.Lock()
        self._matrix = np.zeros((0, 128), dtype=np.float32)
        self._weights = np.zeros(0, dtype=np.float32)
        self._members: list[str] = []  # one per distinct member, in matrix block order
        self._starts = np.zeros(0, dtype=np.int64)  # first row of each member's block
        self._template_ids: list[str] = []  # one per row
        self._unit_weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._members)

    @property
    def template_count(self) -> int:
        """Number of template rows."""
        return int(self._matrix.shape[0])

    def templates_of(self, member_ids: Iterable[str]) -> int:
        """How many template rows these members have (members not in the gallery count 0)."""
        with self._lock:
            members, starts, n = self._members, self._starts, int(self._matrix.shape[0])
        count = 0
        for member in set(member_ids):  # members are kept sorted (load and apply_delta sort them)
            i = bisect.bisect_left(members, member)
            if i < len(members) and members[i] == member:
                count += int((starts[i + 1] if i + 1 < len(starts) else n) - starts[i])
        return count

    def load(self, rows: list[tuple]) -> None:
        """Replace the gallery with (member_id, vector, weight) or (member_id, vector, weight, template_id) rows."""
        rows = sorted(rows, key=lambda r: r[0])
        tids = [str(r[3]) if len(r) > 3 else "" for r in rows]
        rows = [r[:3] for r in rows]
        if rows:
            matrix = np.stack([np.asarray(v, dtype=np.float32) for _, v, _ in rows])
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.maximum(norms, 1e-12)
            weights = np.array([w for _, _, w in rows], dtype=np.float32)
            ids = [m for m, _, _ in rows]
            members = [m for i, m in enumerate(ids) if i == 0 or ids[i - 1] != m]
            starts = np.array([i for i, m in enumerate(ids) if i == 0 or ids[i - 1] != m], dtype=np.int64)
        else:
            matrix, weights, members, starts = (
                np.zeros((0, 128), np.float32), np.zeros(0, np.float32), [], np.zeros(0, np.int64))
        with self._lock:
            self._matrix, self._weights, self._members, self._starts = matrix, weights, members, starts
            self._template_ids = tids
            self._compact = None  # stale: rebuilt for the new matrix by the next large search
            # Identity check in search: these exact weights are all 1 (no feedback, no synced weights).
            self._unit_weights = weights if bool(weights.size) and bool(np.all(weights == 1.0)) else None

    def load_from(self, replica: Replica) -> None:
        """Decrypt the replica's templates into RAM; local "not me" feedback scales their weights."""
        factors = replica.template_factors()
        self.load([(t.member_id, t.vector, t.weight * factors.get(t.template_id, 1.0), t.template_id)
                   for t in replica.templates()])

    def refresh_from(self, replica: Replica, since_rev: int | None = None) -> int:
        """Bring the gallery up to the replica's latest template revision and return it.

        `since_rev` None loads everything; otherwise only templates written or deleted after that
        revision are read, decrypted and merged (`apply_delta`), so a sync of a few rows costs a
        few rows, not a decryption of the whole site.
        """
        if since_rev is None:
            rev = replica.template_rev()  # read first: a commit in between is merged again next time
            self.load_from(replica)
            return rev
        rev, changed, gone = replica.template_changes(since_rev)
        if changed or gone:
            factors = replica.template_factors()
            self.apply_delta([(t.member_id, t.vector, t.weight * factors.get(t.template_id, 1.0), t.template_id)
                              for t in changed], gone)
        return rev

    def apply_delta(self, rows: list[tuple], removed: Iterable[str] = ()) -> None:
        """Upsert (member_id, vector, weight, template_id) rows and drop the `removed` template ids.

        Equivalent to `load` of the merged rows; the unchanged rows are moved by numpy, not rebuilt.
        """
        with self._lock:
            matrix, weights, members, starts = self._matrix, self._weights, self._members, self._starts
            tids = self._template_ids
        n = int(matrix.shape[0])
        drop = set(removed) | {str(r[3]) for r in rows}
        row_members = np.repeat(np.array(members, dtype=object), np.diff(np.append(starts, n))) if n else \
            np.zeros(0, dtype=object)
        keep = np.ones(n, dtype=bool)
        if drop and len(tids) == n:
            keep = np.fromiter((t not in drop for t in tids), dtype=bool, count=n)
        if rows:
            new = np.stack([np.asarray(r[1], dtype=np.float32) for r in rows])
            new = new / np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-12)
            all_m = np.concatenate([matrix[keep], new])
            all_w = np.concatenate([weights[keep], np.array([r[2] for r in rows], dtype=np.float32)])
            all_members = np.concatenate([row_members[keep], np.array([r[0] for r in rows], dtype=object)])
            all_tids = [t for t, k in zip(tids, keep, strict=False) if k] + [str(r[3]) for r in rows]
        else:
            all_m, all_w, all_members = matrix[keep], weights[keep], row_members[keep]
            all_tids = [t for t, k in zip(tids, keep, strict=False) if k]
        order = np.argsort(all_members.astype(str), kind="stable") if len(all_members) else np.zeros(0, np.int64)
        sorted_members = all_members[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = sorted_members[1:] != sorted_members[:-1]
        new_starts = np.flatnonzero(first).astype(np.int64)
        mat, w = all_m[order], all_w[order]
        with self._lock:
            self._matrix, self._weights = mat, w
            self._members = [str(m) for m in sorted_members[new_starts]]
            self._starts = new_starts
            self._template_ids = [all_tids[i] for i in order] if len(all_tids) == len(order) else []
            self._compact = None
            self._unit_weights = w if bool(w.size) and bool(np.all(w == 1.0)) else None

    def scale_template(self, template_id: str, factor: float) -> bool:
        """Multiply one template's weight in RAM (feedback takes effect before the next reload)."""
        with self._lock:
            try:
                row = self._template_ids.index(template_id)
            except ValueError:
                return False
            weights = self._weights.copy()  # copy-on-write: a concurrent search keeps its snapshot
            weights[row] *= factor
            self._weights = weights
        return True

    @property
    def compact_bytes(self) -> int:
        """RAM of the int8 copy currently built (0 when none: small gallery, not searched yet, or float only)."""
        compact = self._compact
        return compact.nbytes if compact is not None else 0

    def _compact_for(self, matrix: np.ndarray) -> CompactCopy | None:
        """The int8 copy of `matrix`: built on first use, or (background mode) None until a thread has built it."""
        compact = self._compact
        if compact is not None and compact.matrix is matrix:
            return compact
        if not self._background:
            return self._build(matrix)
        with self._lock:
            running = self._building is not None and self._building.is_alive()
            if not running and not self._compact_failed:
                # Daemon: a half-built copy of a gallery being shut down is worth nothing.
                self._building = threading.Thread(target=self._build_quietly, args=(matrix,), name="gallery-int8",
                                                  daemon=True)
                self._building.start()
        return None

    def wait_for_build(self, timeout: float | None = None) -> bool:
        """Wait for a background build of the int8 copy to end; True when none is running any more."""
        with self._lock:
            thread = self._building
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _build_quietly(self, matrix: np.ndarray) -> None:
        try:
            self._build(matrix)
        except Exception:  # a background build must never kill anything; float32 still answers
            log.exception("gallery: building the int8 copy failed; searching float32 only")
            self._compact_failed = True

    def _build(self, matrix: np.ndarray) -> CompactCopy | None:
        """Build (or reuse) the int8 copy of `matrix`; None when the kernel is unusable here."""
        with self._build_lock:  # one build at a time; the others wait and reuse it
            compact = self._compact
            if compact is not None and compact.matrix is matrix:
                return compact
            if self._compact_failed:
                return None
            try:
                compact = CompactCopy.build(matrix)
            except KernelUnavailableError as err:
                log.warning("gallery: int8 search unavailable, searching float32 only: %s", err)
                self._compact_failed = True
                return None
            with self._lock:
                if self._matrix is matrix:  # not replaced by a load meanwhile
                    self._compact = compact
            return compact

    def search(self, probe: np.ndarray, k: int = 2) -> list[Candidate]:
        """Top-k members by their best template's weighted cosine similarity to `probe`."""
        with self._lock:
            matrix, weights, members, starts = self._matrix, self._weights, self._members, self._starts
            tids = self._template_ids
            unit = weights is self._unit_weights
        if not members or k <= 0:
            return []
        q = np.asarray(probe, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        if self._scan_min_rows is not None and len(matrix) >= self._scan_min_rows:
            compact = self._compact_for(matrix)
            found = gallery_scan.search(compact, weights, unit, starts, q, k) if compact is not None else None
            if found is not None:
                return [Candidate(members[i], float(score), tids[row] if tids else "")
                        for i, score, row in zip(*found, strict=True)]
        return self._search_plain(matrix, weights, unit, members, starts, tids, q, k)

    @staticmethod
    def _search_plain(matrix: np.ndarray, weights: np.ndarray, unit: bool, members: list[str],
                      starts: np.ndarray, tids: list[str], q: np.ndarray, k: int) -> list[Candidate]:
        """The float32 search: one matrix-vector product over every row."""
        sims = matrix @ q
        # Skip the passes that change nothing (the common cases): one more pass over N scores each.
        if not unit:
            sims *= weights
        best = sims if len(members) == len(sims) else np.maximum.reduceat(sims, starts)
        top = top_members(best, k)
        out = []
        for i in top:
            end = int(starts[i + 1]) if i + 1 < len(starts) else len(sims)
            row = int(starts[i]) + int(np.argmax(sims[starts[i]:end]))
            out.append(Candidate(members[i], float(best[i]), tids[row] if tids else ""))
        return out

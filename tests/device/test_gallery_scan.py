"""The int8 two-stage search returns exactly the brute-force result (device/gallery_scan.py).

The reference below scores every row the way the two-stage path defines an exact score (float64 sum
of the float32 products, rounded to float32), applies weights, takes each member's best row and the
top-k with ties to the lower member index: the two-stage result must equal it member for member,
score for score, template for template. The plain float32 path (BLAS) must agree within 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.gallery import Candidate, Gallery
from device.gallery_scan import CompactCopy
from inference.int8_gemv import Int8Gemv, KernelUnavailableError


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def brute_force(rows: list[tuple], probe: np.ndarray, k: int) -> list[Candidate]:
    """Exact top-k over (member, vector, weight, template_id) rows, written independently of Gallery."""
    q = np.asarray(probe, dtype=np.float32)
    q = q / max(float(np.linalg.norm(q)), 1e-12)
    by_member: dict[str, list[tuple]] = {}
    for r in sorted(rows, key=lambda r: r[0]):
        by_member.setdefault(r[0], []).append(r)
    scored = []
    for member, mine in by_member.items():
        best, tid = None, ""
        for _, v, w, t in mine:
            x = _unit(np.asarray(v, dtype=np.float32))
            s = np.float32(np.float32((x.astype(np.float64) * q.astype(np.float64)).sum()) * np.float32(w))
            if best is None or s > best:
                best, tid = s, t
        scored.append((member, float(best), tid))
    # Stable sort on -score keeps member order among equal scores: ties go to the lower member.
    scored.sort(key=lambda m: -m[1])
    return [Candidate(m, s, t) for m, s, t in scored[:k]]


def _galleries(rows: list[tuple]) -> tuple[Gallery, Gallery]:
    two_stage, plain = Gallery(scan_min_rows=0), Gallery(scan_min_rows=None)
    two_stage.load(rows)
    plain.load(rows)
    return two_stage, plain


def _assert_same(rows: list[tuple], probe: np.ndarray, k: int, gallery: Gallery, plain: Gallery) -> None:
    want = brute_force(rows, probe, k)
    assert gallery.search(probe, k=k) == want
    got_plain = plain.search(probe, k=k)
    assert len(got_plain) == len(want)
    for a, b in zip(got_plain, want, strict=True):
        assert abs(a.score - b.score) < 1e-6
    # Members agree wherever the reference is not a near-tie at float32 rounding.
    scores = [c.score for c in brute_force(rows, probe, k + 1)]
    if len(scores) <= k or scores[k - 1] - scores[k] > 1e-5:
        assert {c.member_id for c in got_plain} == {c.member_id for c in want}


@st.composite
def scenarios(draw):
    """Random galleries with the awkward cases mixed in: near-ties, duplicates, weights, many templates."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    members = draw(st.integers(1, 60))
    per = draw(st.sampled_from([1, 1, 2, 4]))
    offset = draw(st.sampled_from([0.0, 2.0]))  # 2.0: non-centred like dlib embeddings (all cosines high)
    base = rng.normal(size=(members, 128)) + offset
    rows = []
    for m in range(members):
        for t in range(rng.integers(1, per + 1)):
            v = base[m] + 0.3 * rng.normal(size=128) * (t > 0)
            rows.append((f"m{m:03d}", v, 1.0, f"m{m:03d}-t{t}"))
    weighted = draw(st.booleans())
    if weighted:  # "not me" feedback and synced weights: some templates down-weighted
        rows = [(m, v, float(rng.choice([1.0, 1.0, 0.5, 0.25, 0.0])), t) for m, v, w, t in rows]
    kind = draw(st.sampled_from(["member", "near", "dup", "random"]))
    pick = rows[int(rng.integers(len(rows)))]
    if kind == "member":
        probe = np.asarray(pick[1])
    elif kind == "near":  # a second member one float32 step from the probe's best match: a near-tie
        probe = np.asarray(pick[1])
        rows.append(("zz-twin", np.asarray(pick[1]) + 1e-7 * rng.normal(size=128), pick[2], "zz-twin-t0"))
    elif kind == "dup":  # exact duplicate rows under other members: exact ties
        probe = np.asarray(pick[1])
        rows += [(f"dup{i}", pick[1], pick[2], f"dup{i}-t0") for i in range(3)]
    else:
        probe = rng.normal(size=128) + offset
    k = draw(st.sampled_from([1, 2, 3, 10]))
    return rows, probe.astype(np.float32), k


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_two_stage_equals_brute_force(case):
    rows, probe, k = case
    gallery, plain = _galleries(rows)
    _assert_same(rows, probe, k, gallery, plain)


def test_large_gallery_switches_by_size_and_matches():
    """GIVEN a switch size of 5000 rows WHEN 100 / 6001 rows are searched THEN only the large one builds the
    int8 copy, and it answers exactly."""
    rng = np.random.default_rng(7)
    n = 6000
    vecs = rng.normal(size=(n, 128)) + 1.0
    rows = [(f"M{i:05d}", vecs[i], 1.0 if i % 7 else 0.5, f"T{i}") for i in range(n)]
    rows += [("M00010", vecs[10] + 0.2 * rng.normal(size=128), 1.0, "T10b")]  # a second template
    small, big = Gallery(scan_min_rows=5000), Gallery(scan_min_rows=5000)
    small.load(rows[:100])
    big.load(rows)
    plain = Gallery(scan_min_rows=None)
    plain.load(rows)
    small.search(vecs[0])
    assert small.compact_bytes == 0  # below the switch size: float32 only
    for i in list(range(0, n, 499)) + [10]:
        _assert_same(rows, vecs[i].astype(np.float32), 3, big, plain)
    for _ in range(10):
        _assert_same(rows, (rng.normal(size=128) + 1.0).astype(np.float32), 2, big, plain)
    assert big.compact_bytes == (n + 1) * 128 and Gallery().compact_bytes == 0


def test_updates_keep_the_compact_copy_consistent():
    """Add, remove, reweight and delta-sync members: every search answers for the gallery as it is now."""
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(400, 128))
    rows = [(f"M{i:03d}", vecs[i], 1.0, f"T{i}") for i in range(300)]
    g = Gallery(scan_min_rows=0)
    g.load(rows)
    assert g.search(vecs[5])[0].member_id == "M005" and g.compact_bytes == 300 * 128
    # Sync delta: 100 new members, one removed, one re-enrolled with a new vector.
    new = [(f"M{i:03d}", vecs[i], 1.0, f"T{i}") for i in range(300, 400)]
    moved = ("M007", vecs[399] * -1, 1.0, "T7")
    g.apply_delta(new + [moved], removed=["T5"])
    rows = [r for r in rows if r[3] not in ("T5", "T7")] + new + [moved]
    for probe in (vecs[5], vecs[350], vecs[7], vecs[399] * -1):
        assert g.search(probe, k=3) == brute_force(rows, probe, 3)
    assert g.compact_bytes == len(rows) * 128  # rebuilt for the new matrix
    # "Not me": the weight changes in RAM, the int8 copy stays valid and the result follows the weight.
    assert g.scale_template("T350", 0.5)
    rows = [(m, v, 0.5 if t == "T350" else w, t) for m, v, w, t in rows]
    assert g.search(vecs[350], k=3) == brute_force(rows, vecs[350], 3)
    g.load([])
    assert g.search(vecs[1]) == [] and g.compact_bytes == 0


def _close(got: list[Candidate], want: list[Candidate]) -> bool:
    """Same members and templates in the same order, scores within float32 rounding (the float32 path)."""
    return [(c.member_id, c.template_id) for c in got] == [(c.member_id, c.template_id) for c in want] and all(
        abs(a.score - b.score) <= 1e-6 for a, b in zip(got, want, strict=True))


def test_background_build_never_makes_a_search_wait_and_results_stay_exact():
    """GIVEN a device gallery (int8 copy built in the background) WHEN members are loaded or a sync delta
    arrives THEN searches answer at once from float32 with the exact result, and once the copy is built
    the two-stage path answers the same."""
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(500, 128))
    rows = [(f"M{i:03d}", vecs[i], 1.0, f"T{i}") for i in range(400)]
    g = Gallery(scan_min_rows=0, build_in_background=True)
    g.load(rows)
    assert _close(g.search(vecs[9], k=3), brute_force(rows, vecs[9], 3))  # float32 while the copy is built
    assert g.wait_for_build(timeout=60) and g.compact_bytes == 400 * 128
    assert g.search(vecs[9], k=3) == brute_force(rows, vecs[9], 3)  # two-stage now
    new = [(f"M{i:03d}", vecs[i], 1.0, f"T{i}") for i in range(400, 500)]
    g.apply_delta(new, removed=["T9"])
    rows = [r for r in rows if r[3] != "T9"] + new
    assert g.compact_bytes == 0  # stale copy dropped with the old matrix
    for probe in (vecs[9], vecs[450]):
        assert _close(g.search(probe, k=3), brute_force(rows, probe, 3))
    assert g.wait_for_build(timeout=60) and g.compact_bytes == len(rows) * 128
    assert g.search(vecs[450], k=3) == brute_force(rows, vecs[450], 3)


def test_empty_and_degenerate_probes():
    g = Gallery(scan_min_rows=0)
    assert g.search(np.ones(128)) == []
    rows = [("A", np.ones(128), 1.0, "a"), ("B", -np.ones(128), 1.0, "b")]
    g.load(rows)
    plain = Gallery(scan_min_rows=None)
    plain.load(rows)
    # A zero probe cannot be quantised: the plain path answers (every score 0, lower member first).
    assert g.search(np.zeros(128), k=2) == plain.search(np.zeros(128), k=2)
    assert g.search(np.ones(128), k=5) == brute_force(rows, np.ones(128), 5)


def test_kernel_matches_exact_integer_product():
    rng = np.random.default_rng(0)
    codes = rng.integers(-127, 128, size=(1000, 128)).astype(np.int8)
    gemv = Int8Gemv(codes)
    p = rng.integers(-127, 128, size=128)
    p[3] = -127
    got = gemv(p, 0.5)
    want = (codes.astype(np.int64) @ p) * 0.5
    assert np.max(np.abs(got - want)) <= 1e-6 * np.abs(want).max()
    with pytest.raises(KernelUnavailableError):
        Int8Gemv(codes[:, :100])  # a row length the op cannot take as one block


def test_bound_holds_for_every_row():
    """The per-probe bound covers |exact - coarse| for every row, and is small enough to be useful."""
    rng = np.random.default_rng(11)
    x = _unit(rng.normal(size=(8000, 128)) + 1.5)
    copy = CompactCopy.build(x)
    for _ in range(20):
        q = _unit(rng.normal(size=128) + 1.5 * rng.integers(0, 2))
        raw, const, bound = copy.coarse(q)
        coarse = raw.astype(np.float64) + const
        exact = x.astype(np.float64) @ q.astype(np.float64)
        assert np.max(np.abs(exact - coarse)) <= bound < 0.05

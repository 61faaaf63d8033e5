"""Thresholds that grow with the gallery: the share of strangers greeted as somebody stays bounded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.config import IdentityConfig
from device.errors import DeviceError
from device.gallery import Gallery
from device.identity import Identifier
from device.open_set import ImpostorTail, OpenSetPolicy
from tests.device.vectors import near as _near
from tests.device.vectors import unit as _unit


def _default_policy(**kw) -> OpenSetPolicy:
    cfg = IdentityConfig(**kw)
    return OpenSetPolicy.from_config(cfg)


def test_fit_recovers_an_exponential_tail_and_errs_high():
    rng = np.random.default_rng(7)
    # Bulk normal around 0.83, plus an exponential tail of known mean excess above 0.89.
    bulk = rng.normal(0.83, 0.02, size=98_000).clip(max=0.889)
    tail = 0.89 + rng.exponential(0.01, size=2_000)
    tail_model = ImpostorTail.fit(np.concatenate([bulk, tail]))
    assert tail_model.u == pytest.approx(0.89, abs=0.002)
    assert tail_model.p_u == pytest.approx(0.02, rel=0.05)
    assert 0.01 <= tail_model.beta <= 0.0115  # the bootstrap upper bound: not below the truth, not far above
    # Where data exist the model is near the empirical rate, and errs high rather than low.
    scores = np.concatenate([bulk, tail])
    for t in (0.90, 0.92, 0.94):
        empirical = (scores >= t).mean()
        assert 0.8 * empirical <= tail_model.far(t) <= 3 * empirical


def test_threshold_for_far_inverts_far():
    tail = ImpostorTail(u=0.89, p_u=0.02, beta=0.01)
    for far in (1e-3, 1e-5, 1e-7):
        assert tail.far(tail.threshold_for_far(far)) == pytest.approx(far, rel=1e-9)
    assert tail.threshold_for_far(0.5) == 0.89  # above p_u: the tail does not apply
    assert tail.threshold_for_far(0.0) == 1.0


def test_fit_refuses_too_few_pairs_with_the_number_needed():
    with pytest.raises(DeviceError, match=r"too few.*1500\+"):
        ImpostorTail.fit(np.random.default_rng(0).normal(0.8, 0.03, size=200))


def test_out_of_range_tail_is_refused():
    with pytest.raises(DeviceError, match="out of range"):
        ImpostorTail(u=0.9, p_u=0.0, beta=0.01)


def test_small_gallery_keeps_the_calibrated_thresholds_large_one_raises_them():
    policy = _default_policy()
    small = policy.thresholds(10)
    assert (small.base, small.greet, small.payment) == (0.93, 0.93, 0.95)
    sizes = [10, 100, 1_000, 10_000]
    greets = [policy.thresholds(n).greet for n in sizes]
    assert greets == sorted(greets) and greets[-1] > greets[1] > 0.93
    for n in sizes:
        th = policy.thresholds(n)
        # The union bound: n templates times the per-pair FAR stays within the target wherever the
        # threshold is set by the tail (i.e. not capped at 1.0).
        if th.greet < 1.0 and th.greet > th.base:
            assert n * policy.tail.far(th.greet) == pytest.approx(0.01, rel=1e-6)
        assert th.payment >= th.greet or th.payment >= 0.95


def test_largest_gallery_for_the_base_threshold():
    policy = _default_policy()
    n = policy.largest_gallery(0.93, 0.01)
    assert policy.thresholds(n).greet == pytest.approx(0.93, abs=1e-3)
    assert policy.thresholds(10 * n).greet > 0.93


def test_scale_with_gallery_off_keeps_fixed_thresholds():
    policy = OpenSetPolicy(None, match_threshold=0.93, payment_threshold=0.95, greeting_fpir=0.01, payment_fpir=0.001)
    th = policy.thresholds(1_000_000)
    assert (th.greet, th.payment) == (0.93, 0.95)


def test_identifier_asks_for_confirmation_only_when_the_gallery_is_large():
    rng = np.random.default_rng(3)
    alice = _unit(rng.normal(size=128))
    probe = _near(alice, 0.945, seed=4)  # a good, not outstanding, match
    rows = [("alice", alice, 1.0)]
    small = Gallery()
    small.load(rows)
    ident = Identifier(small, threshold=0.93, min_margin=0.02, payment_threshold=0.95, policy=_default_policy())
    d = ident.decide(probe)
    assert d.member_id == "alice" and not d.confirm

    # 2,000 more members (random directions: they never match, they only make the gallery large).
    others = [(f"m{i}", _unit(v), 1.0) for i, v in enumerate(rng.normal(size=(2_000, 128)))]
    big = Gallery(scan_min_rows=None)
    big.load(rows + others)
    ident = Identifier(big, threshold=0.93, min_margin=0.02, payment_threshold=0.95, policy=_default_policy())
    d = ident.decide(probe)
    assert d.member_id == "alice" and d.confirm  # still alice, but the face alone is not enough
    assert ident.decide(probe, payment=True).member_id is None  # too weak to pay without digits
    strong = ident.decide(alice)
    assert strong.member_id == "alice" and strong.score == pytest.approx(1.0, abs=1e-5)
    assert not strong.confirm or ident.thresholds().greet >= 1.0 - 1e-9


def test_calibrated_defaults_are_consistent():
    cfg = IdentityConfig()
    tail = ImpostorTail(**cfg.impostor_tail.model_dump())
    # The default match threshold is the greeting threshold of a small site: the tail puts the
    # per-pair FAR at 0.93 between 1e-5 and 1e-3 (the labelled photos observe ~1e-4).
    assert 1e-5 < tail.far(cfg.match_threshold) < 1e-3
    assert math.isfinite(tail.threshold_for_far(1e-9))


def test_people_bootstrap_widens_the_bound_when_a_few_people_make_the_tail():
    """Three look-alike people account for most high scores: resampling pairs as if independent
    understates how uncertain the mean excess is; resampling people does not."""
    rng = np.random.default_rng(5)
    n_people = 60
    a = rng.integers(0, n_people, size=60_000)
    b = (a + rng.integers(1, n_people, size=a.size)) % n_people
    scores = rng.normal(0.83, 0.02, size=a.size).clip(max=0.885)
    # A shared tail plus much higher scores between people 0, 1 and 2.
    tail_rows = rng.choice(a.size, 1_000, replace=False)
    scores[tail_rows] = 0.89 + rng.exponential(0.006, size=tail_rows.size)
    close = np.flatnonzero((a < 3) & (b < 3))[:150]
    scores[close] = 0.89 + rng.exponential(0.03, size=close.size)
    iid = ImpostorTail.fit(scores)
    by_people = ImpostorTail.fit(scores, sides=(a, b))
    assert (by_people.u, by_people.p_u) == (iid.u, iid.p_u)
    assert by_people.beta > 1.1 * iid.beta


def test_members_known_to_be_present_share_the_budget_and_the_bound_still_holds():
    policy = _default_policy()
    n = 5_000
    alone = policy.thresholds(n)
    th = policy.thresholds(n, present=4)
    # A handful present: their bar is far lower; everybody else's rises a little (half the budget).
    assert th.base <= th.greet_present < alone.greet < th.greet
    tail = policy.tail
    assert (n - 4) * tail.far(th.greet) + 4 * tail.far(th.greet_present) <= 0.01 * (1 + 1e-9)
    assert alone.greet_present == alone.greet  # nobody present: one bar for all
    many = policy.thresholds(n, present=n)  # everybody "present": no better than before
    assert many.greet_present >= alone.greet - 0.01

"""1:N search and the open-set decision."""

from __future__ import annotations

import numpy as np

from device.gallery import Gallery
from device.identity import Decision, Identifier, TrackVotes


def _unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_search_returns_best_template_per_member():
    rng = np.random.default_rng(0)
    a1, a2, b = (_unit(rng.normal(size=128)) for _ in range(3))
    g = Gallery()
    g.load([("B", b, 1.0), ("A", a1, 1.0), ("A", a2, 1.0)])
    assert len(g) == 2 and g.template_count == 3
    top = g.search(a2, k=2)
    assert top[0].member_id == "A" and abs(top[0].score - 1.0) < 1e-5
    assert top[1].member_id == "B"


def test_weight_lowers_a_template():
    v = _unit(np.ones(128))
    g = Gallery()
    g.load([("A", v, 0.5)])
    assert abs(g.search(v)[0].score - 0.5) < 1e-5


def test_identifier_needs_threshold_and_margin():
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=128))
    twin = _unit(base + 0.01 * rng.normal(size=128))
    other = _unit(rng.normal(size=128))
    g = Gallery()
    g.load([("A", base, 1.0), ("B", other, 1.0)])
    ident = Identifier(g, threshold=0.9, min_margin=0.05)
    assert ident.decide(base).member_id == "A"
    assert ident.decide(other * -1).member_id is None  # far from everybody
    g.load([("A", base, 1.0), ("B", twin, 1.0)])
    assert ident.decide(base).member_id is None  # two members too close to call
    assert Identifier(Gallery(), threshold=0.9, min_margin=0.0).decide(base) == Decision(None, 0.0, 0.0)


def test_votes_conflict_means_no_verdict():
    v = TrackVotes()
    v.add(Decision("A", 0.95, 0.1))
    assert v.verdict() == "A"
    v.add(Decision(None, 0.5, 0.0))
    assert v.verdict() == "A"
    v.add(Decision("B", 0.94, 0.1))
    assert v.verdict() is None

"""Negative feedback: "not me" is recorded in the replica's local tables and stops a repeated wrong match."""

from __future__ import annotations

import numpy as np
import pytest

from api.v1 import crm_pb2, sync_pb2
from device.gallery import Gallery
from device.identity import NOT_ME_FLOOR, Identifier
from sync.crypto import TemplateCipher
from sync.replica import Replica
from tests.device.vectors import near as _near
from tests.device.vectors import unit as _unit


@pytest.fixture
def replica(tmp_path):
    rep = Replica(tmp_path / "replica.db", TemplateCipher(tmp_path / "identity"))
    yield rep
    rep.close()


def _load(replica: Replica, templates: dict[str, tuple[str, np.ndarray]]) -> None:
    changes = [
        sync_pb2.Change(seq=i + 1, key=tid, template=crm_pb2.FaceTemplate(
            template_id=tid, member_id=member, model="dlib_resnet_v1", vector=vec.astype("<f4").tobytes(),
            weight=1.0))
        for i, (tid, (member, vec)) in enumerate(sorted(templates.items()))
    ]
    replica.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_TEMPLATES, changes=changes,
                                             next_seq=len(changes)))


def test_repeated_wrong_match_stops_after_not_me(replica, tmp_path):
    rng = np.random.default_rng(1)
    alice_front, alice_side, bob = (_unit(rng.normal(size=128)) for _ in range(3))
    _load(replica, {"T-a1": ("alice", alice_front), "T-a2": ("alice", alice_side), "T-b": ("bob", bob)})
    gallery = Gallery()
    gallery.load_from(replica)
    ident = Identifier(gallery, threshold=0.93, min_margin=0.02, payment_threshold=0.95)
    stranger = _near(alice_front, 0.95, seed=2)  # a look-alike who is not alice
    first = ident.decide(stranger)
    assert first.member_id == "alice" and first.template_id == "T-a1"
    assert ident.decide(stranger).member_id == "alice"  # the wrong match repeats until feedback

    factor = ident.not_me(first, replica)
    assert factor is not None and factor < 1.0
    assert ident.decide(stranger).member_id is None
    events = replica.feedback_events()
    assert [(e["kind"], e["member_id"], e["template_id"]) for e in events] == [("not_me", "alice", "T-a1")]

    # Alice herself is still recognised through her other template, and the feedback survives a reload
    # (a restart), because it lives in the replica, not only in RAM.
    alice_again = _near(alice_side, 0.97, seed=3)
    assert ident.decide(alice_again).member_id == "alice"
    reopened = Replica(tmp_path / "replica.db", TemplateCipher(tmp_path / "identity"))
    try:
        fresh = Gallery()
        fresh.load_from(reopened)
        again = Identifier(fresh, threshold=0.93, min_margin=0.02)
        assert again.decide(stranger).member_id is None
        assert again.decide(alice_again).member_id == "alice"
    finally:
        reopened.close()


def test_weight_never_drops_below_floor_and_payment_is_stricter(replica):
    base = _unit(np.ones(128))
    _load(replica, {"T1": ("m", base)})
    gallery = Gallery()
    gallery.load_from(replica)
    ident = Identifier(gallery, threshold=0.90, min_margin=0.0, payment_threshold=0.97)
    probe = _near(base, 0.95, seed=4)
    assert ident.decide(probe).member_id == "m"
    assert ident.decide(probe, payment=True).member_id is None
    decision = ident.decide(probe)
    factors = [ident.not_me(decision, replica) for _ in range(30)]
    assert factors == sorted(factors, reverse=True) and min(factors) == pytest.approx(NOT_ME_FLOOR)
    assert replica.template_factors() == {"T1": pytest.approx(NOT_ME_FLOOR)}
    top = gallery.search(probe, k=1)[0]
    assert top.score == pytest.approx(0.95 * NOT_ME_FLOOR, abs=1e-4)


def test_not_me_without_a_template_is_ignored(replica):
    ident = Identifier(Gallery(), threshold=0.9, min_margin=0.0)
    assert ident.not_me(ident.decide(np.ones(128)), replica) is None
    assert replica.feedback_events() == []

"""The device replica: batches with their cursor in one transaction, tombstones, sealed templates."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from api.v1 import crm_pb2, sync_pb2
from sync.crypto import TemplateCipher
from sync.errors import KeyError_, ReplicaError
from sync.replica import Replica


def _template(tid: str, member: str, seed: int) -> crm_pb2.FaceTemplate:
    v = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return crm_pb2.FaceTemplate(template_id=tid, member_id=member, model="dlib_resnet_v1", vector=v.tobytes())


def _batch(stream, changes, next_seq, has_more=False):
    return sync_pb2.StreamBatch(stream=stream, changes=changes, next_seq=next_seq, has_more=has_more)


@pytest.fixture
def replica(tmp_path):
    rep = Replica(tmp_path / "replica.db", TemplateCipher(tmp_path / "identity"))
    yield rep
    rep.close()


def test_batch_and_cursor_commit_together(replica):
    m = crm_pb2.Member(member_id="M1", name="王建", tier="金卡")
    replica.apply_batch(_batch(sync_pb2.STREAM_MEMBERS, [sync_pb2.Change(seq=3, key="M1", member=m)], 3))
    assert replica.cursors()[sync_pb2.STREAM_MEMBERS] == 3
    assert replica.member("M1")["name"] == "王建"
    # A batch that fails half way leaves neither its rows nor its cursor behind.
    bad = _batch(99, [sync_pb2.Change(seq=4, key="M2", member=m)], 4)
    with pytest.raises(ReplicaError, match="unknown stream"):
        replica.apply_batch(bad)
    assert replica.cursors()[sync_pb2.STREAM_MEMBERS] == 3


def test_member_tombstone_removes_templates_too(replica):
    m = crm_pb2.Member(member_id="M1", name="王建")
    replica.apply_batch(_batch(sync_pb2.STREAM_MEMBERS, [sync_pb2.Change(seq=1, key="M1", member=m)], 1))
    replica.apply_batch(_batch(sync_pb2.STREAM_TEMPLATES,
                               [sync_pb2.Change(seq=2, key="F1", template=_template("F1", "M1", 0))], 2))
    assert len(replica.templates()) == 1
    replica.apply_batch(_batch(sync_pb2.STREAM_MEMBERS, [sync_pb2.Change(seq=5, key="M1", deleted=True)], 5))
    assert replica.member("M1") is None and replica.templates() == []


def test_templates_are_not_readable_from_the_file(tmp_path, replica):
    t = _template("F1", "M1", 42)
    replica.apply_batch(_batch(sync_pb2.STREAM_TEMPLATES, [sync_pb2.Change(seq=1, key="F1", template=t)], 1))
    got = replica.templates()[0].vector
    assert np.array_equal(got, np.frombuffer(t.vector, dtype="<f4"))
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("replica.db*"))
    assert t.vector[:16] not in raw and t.vector[64:80] not in raw
    key_file = tmp_path / "identity" / "identity.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_crypto_erase_makes_templates_unreadable(tmp_path, replica):
    replica.apply_batch(_batch(sync_pb2.STREAM_TEMPLATES,
                               [sync_pb2.Change(seq=1, key="F1", template=_template("F1", "M1", 1))], 1))
    replica.cipher.destroy()
    with pytest.raises(KeyError_):
        replica.templates()


def test_data_version_moves_when_another_connection_commits(tmp_path, replica):
    before = replica.data_version()
    other = Replica(tmp_path / "replica.db", TemplateCipher(tmp_path / "identity"))
    other.apply_batch(_batch(sync_pb2.STREAM_MEMBERS,
                             [sync_pb2.Change(seq=1, key="M9", member=crm_pb2.Member(member_id="M9"))], 1))
    other.close()
    assert replica.data_version() != before


def test_unopenable_replica_is_a_clear_error(tmp_path):
    path = tmp_path / "replica.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ReplicaError, match="cannot open replica"):
        Replica(path, TemplateCipher(tmp_path / "identity"))
    assert isinstance(ReplicaError.__mro__[1](), Exception)
    assert sqlite3.sqlite_version

"""SqliteStorage: consent rules, tombstones, atomic writes, templates encrypted at rest."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from api.v1 import crm_pb2
from cloud_stub.errors import InvalidRequestError, NotFoundError, StorageError
from cloud_stub.storage import (
    MIGRATIONS,
    STREAM_COUPONS,
    STREAM_MEMBERS,
    STREAM_TAGS,
    STREAM_TEMPLATES,
    SqliteStorage,
)


def _member(storage: SqliteStorage, member_id: str = "m1", site_id: str = "s1") -> None:
    storage.upsert_site(site_id, site_id)
    storage.upsert_member(member_id=member_id, site_id=site_id, name="王建", phone="13812345678")


def _vector(seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_add_template_without_consent_raises_and_writes_nothing(storage: SqliteStorage) -> None:
    _member(storage)
    before = storage.changes(STREAM_TEMPLATES, "s1", 0, 100)
    with pytest.raises(InvalidRequestError, match="consent"):
        storage.add_template(member_id="m1", consent_id="nope", model="dlib", vector=_vector())
    assert storage.changes(STREAM_TEMPLATES, "s1", 0, 100) == before == ([], False)


def test_add_template_with_withdrawn_or_foreign_consent_raises(storage: SqliteStorage) -> None:
    _member(storage, "m1")
    _member(storage, "m2")
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="face-consent-v1")
    with pytest.raises(InvalidRequestError):
        storage.add_template(member_id="m2", consent_id=consent, model="dlib", vector=_vector())
    storage.withdraw_consent("m1")
    with pytest.raises(InvalidRequestError, match="withdrawn"):
        storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=_vector())


def test_template_round_trips_decrypted(storage: SqliteStorage) -> None:
    _member(storage)
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="v1")
    vec = _vector(3)
    tid = storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=vec)
    (change,), has_more = storage.changes(STREAM_TEMPLATES, "s1", 0, 10)
    seq, key, deleted, row = change
    assert (key, deleted, has_more) == (tid, False, False)
    assert row is not None and row["vector"] == vec.astype("<f4").tobytes()


def test_template_vector_is_not_stored_in_plaintext(storage: SqliteStorage, db_path: Path) -> None:
    """GIVEN a stored template WHEN the database files are scanned THEN the float32 bytes are absent."""
    _member(storage)
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="v1")
    vec = _vector(5)
    storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=vec)
    raw = vec.astype("<f4").tobytes()
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name) and not p.name.endswith(".key")]
    assert files, "no database files found"
    for path in files:
        data = path.read_bytes()
        assert raw not in data, f"plaintext template in {path.name}"
        assert raw[:16] not in data, f"part of the plaintext template in {path.name}"
    key_file = db_path.with_name(db_path.name + ".key")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_template_under_another_key_does_not_decrypt(storage: SqliteStorage, db_path: Path) -> None:
    _member(storage)
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="v1")
    storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=_vector())
    db_path.with_name(db_path.name + ".key").write_bytes(b"\x01" * 32)
    with pytest.raises(StorageError, match="decrypt"):
        SqliteStorage(db_path).changes(STREAM_TEMPLATES, "s1", 0, 10)


def test_withdraw_consent_tombstones_every_template(storage: SqliteStorage) -> None:
    _member(storage)
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="v1")
    tids = {storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=_vector(i))
            for i in range(3)}
    _, _ = storage.changes(STREAM_TEMPLATES, "s1", 0, 10)
    assert storage.withdraw_consent("m1") == 3
    changes, _ = storage.changes(STREAM_TEMPLATES, "s1", 0, 10)
    assert {c[1] for c in changes} == tids and all(c[2] and c[3] is None for c in changes)


def test_delete_member_cascades_tombstones(storage: SqliteStorage) -> None:
    _member(storage)
    storage.upsert_tag(tag_id="t1", member_id="m1", kind="rfm", value="重要价值客户")
    storage.upsert_coupon(coupon_id="c1", member_id="m1", title="20元现金券", kind=crm_pb2.COUPON_KIND_CASH,
                          value_cents=2000, valid_from_ms=0, valid_until_ms=10)
    consent = storage.add_consent(member_id="m1", device_id="d", text_version="v1")
    storage.add_template(member_id="m1", consent_id=consent, model="dlib", vector=_vector(), template_id="tp1")
    storage.delete_member("m1")
    for stream, key in ((STREAM_MEMBERS, "m1"), (STREAM_TAGS, "t1"), (STREAM_COUPONS, "c1"),
                        (STREAM_TEMPLATES, "tp1")):
        changes, has_more = storage.changes(stream, "s1", 0, 10)
        assert [c[1:] for c in changes] == [(key, True, None)] and not has_more
    with pytest.raises(NotFoundError):
        storage.get_member("m1")


def test_writes_to_unknown_member_raise_not_found(storage: SqliteStorage) -> None:
    with pytest.raises(NotFoundError):
        storage.upsert_tag(tag_id="t", member_id="ghost", kind="rfm", value="x")
    with pytest.raises(NotFoundError):
        storage.withdraw_consent("ghost")


def test_migrations_recorded_once(db_path: Path) -> None:
    import sqlite3

    SqliteStorage(db_path)
    SqliteStorage(db_path)
    conn = sqlite3.connect(db_path)
    try:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _ in MIGRATIONS]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        SqliteStorage(bad)


def test_member_update_without_phone_keeps_phone(storage: SqliteStorage) -> None:
    _member(storage)
    storage.upsert_member(member_id="m1", site_id="s1", name="王建", tier="金卡", points=10)
    row = storage.get_member("m1")
    assert (row["phone_last4"], row["tier"], row["points"]) == ("5678", "金卡", 10) and row["phone_hash"]
    assert "13812345678" not in str(row)


def test_member_moved_to_another_site_is_tombstoned_in_the_old_one(storage: SqliteStorage) -> None:
    _member(storage, "m1", "s1")
    storage.upsert_tag(tag_id="t1", member_id="m1", kind="rfm", value="x")
    storage.upsert_site("s2", "s2")
    storage.upsert_member(member_id="m1", site_id="s2", name="王建")
    assert [c[1:3] for c in storage.changes(STREAM_MEMBERS, "s1", 0, 10)[0]] == [("m1", True)]
    assert [c[1:3] for c in storage.changes(STREAM_TAGS, "s1", 0, 10)[0]] == [("t1", True)]
    assert [c[1:3] for c in storage.changes(STREAM_MEMBERS, "s2", 0, 10)[0]] == [("m1", False)]
    assert [c[1:3] for c in storage.changes(STREAM_TAGS, "s2", 0, 10)[0]] == [("t1", False)]


def test_concurrent_writers_get_distinct_sequences(storage: SqliteStorage) -> None:
    """GIVEN 8 threads upserting members at once THEN every write has its own seq and none is lost."""
    from concurrent.futures import ThreadPoolExecutor

    storage.upsert_site("s1", "s1")

    def write(i: int) -> int:
        return storage.upsert_member(member_id=f"m{i}", site_id="s1", name=f"会员{i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(write, range(80)))
    assert len(set(seqs)) == 80
    changes, has_more = storage.changes(STREAM_MEMBERS, "s1", 0, 1000)
    assert sorted(c[0] for c in changes) == sorted(seqs) and not has_more

"""Cloud schema upgrades: a database of the previous release (migrations 1-5, plus the tables its modules
created on first use) opens under migration 6 with every row kept and every module working on it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloud_stub import cli_reconcile, member_qr
from cloud_stub.errors import ConflictError
from cloud_stub.marketing import unredeem
from cloud_stub.storage import MIGRATIONS, SqliteStorage
from cloud_stub.storage import db as sqldb

#: The tables the previous release's modules made on first use, verbatim from that release
#: (cloud_stub/member_qr.py, marketing/unredeem.py, cli_reconcile.py before migration 6).
PREVIOUS_FIRST_USE = (
    "CREATE TABLE IF NOT EXISTS member_qr_spent (key_id BLOB NOT NULL, nonce BLOB NOT NULL, event_id TEXT NOT NULL,"
    " device_id TEXT NOT NULL, member_id TEXT NOT NULL, spent_at_ms INTEGER NOT NULL, until_ms INTEGER NOT NULL,"
    " PRIMARY KEY (key_id, nonce))",
    "CREATE INDEX IF NOT EXISTS member_qr_spent_until ON member_qr_spent (until_ms)",
    "CREATE TABLE IF NOT EXISTS member_qr_refusals (event_id TEXT PRIMARY KEY, device_id TEXT NOT NULL,"
    " site_id TEXT NOT NULL, member_id TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,"
    " occurred_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS member_qr_site_policy (site_id TEXT PRIMARY KEY, allow_legacy INTEGER NOT NULL,"
    " changed_at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS coupon_unredemptions (redemption_id TEXT PRIMARY KEY, unredeem_id TEXT NOT NULL,"
    " coupon_id TEXT NOT NULL, member_id TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,"
    " asked_at_ms INTEGER NOT NULL, done_at_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reconcile_closures (compensation_id TEXT PRIMARY KEY, note TEXT NOT NULL,"
    " closed_at_ms INTEGER NOT NULL)",
)
NEW_TABLES = ("member_qr_spent", "member_qr_refusals", "member_qr_site_policy", "coupon_unredemptions",
              "reconcile_closures")
PREVIOUS = [m for m in MIGRATIONS if m[0] <= 5]


def _previous_release_db(path: Path, *, first_use: bool) -> None:
    """The database the previous release left: migrations 1-5 and, once its features had been used, the
    first-use tables holding rows."""
    conn = sqldb.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        sqldb.migrate(conn, PREVIOUS)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO sites VALUES ('s1', 'Site 1')")
        conn.execute("INSERT INTO members (member_id, site_id, name, tier, points, tier_keep_points, phone_hash,"
                     " phone_last4, gender, birthday, updated_at_ms, seq) VALUES"
                     " ('m1', 's1', '王建', '普卡', 0, 0, '', '5678', '', '', 1, 1)")
        conn.execute("INSERT INTO compensations VALUES ('comp-1', 'coupon_double_redemption', 'dev-1', 'c1',"
                     " 'red-sale1', 'm1', 500, 'double', 10)")
        if first_use:
            for statement in PREVIOUS_FIRST_USE:
                conn.execute(statement)
            conn.execute("INSERT INTO member_qr_spent VALUES (x'01', x'0203', 'ev-1', 'dev-1', 'm1', 20, 9e15)")
            conn.execute("INSERT INTO member_qr_refusals VALUES ('ev-2', 'dev-1', 's1', 'm1', 'replayed', 'again',"
                         " 30, 31)")
            conn.execute("INSERT INTO member_qr_site_policy VALUES ('s1', 1, 40)")
            conn.execute("INSERT INTO coupon_unredemptions VALUES ('red-sale0', 'ref-sale0.1', 'c0', 'm1',"
                         " 'restored', '', 50, 50)")
            conn.execute("INSERT INTO reconcile_closures VALUES ('comp-1', 'collected at the counter', 60)")
        conn.execute("COMMIT")
    finally:
        conn.close()


def _columns(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        shape = {t: conn.execute(f"PRAGMA table_info({t})").fetchall() for t in NEW_TABLES}
        marks = ",".join("?" * len(NEW_TABLES))
        shape["indexes"] = conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
                                        f" AND tbl_name IN ({marks}) ORDER BY name", NEW_TABLES).fetchall()
    conn.close()
    return shape


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    conn.close()
    return versions


def test_previous_release_with_first_use_tables_upgrades_and_keeps_rows(tmp_path: Path) -> None:
    """GIVEN a database of the previous release whose member-QR, unredeem and reconcile tables were made on
    first use and hold rows WHEN this release opens it THEN migration 6 is recorded, the rows are all
    there, the modules read them, and the tables have the shape a fresh database gets."""
    old = tmp_path / "old.db"
    _previous_release_db(old, first_use=True)
    assert _versions(old) == [1, 2, 3, 4, 5]

    storage = SqliteStorage(old)
    assert _versions(old) == [v for v, _ in MIGRATIONS]
    assert [r["reason"] for r in member_qr.refusals(storage)] == ["replayed"]
    assert member_qr.legacy_allowed(storage, "s1") is True
    assert [(u["redemption_id"], u["state"]) for u in unredeem.unredemptions(storage)] == [("red-sale0", "restored")]
    [item] = cli_reconcile.flagged(storage, open_only=False)
    assert (item["id"], item["state"], item["note"]) == ("comp-1", "closed", "collected at the counter")
    with pytest.raises(ConflictError, match="collected at the counter"):
        cli_reconcile.close(storage, "comp-1", "again")
    with storage.transaction("read spent", write=False) as conn:
        assert [tuple(r) for r in conn.execute("SELECT event_id, nonce FROM member_qr_spent")] == [("ev-1", b"\x02\x03")]

    assert _columns(old) == _columns(_fresh(tmp_path))


def test_previous_release_without_first_use_tables_gets_them(tmp_path: Path) -> None:
    """GIVEN a previous-release database where none of those features was ever used (no first-use tables)
    WHEN this release opens it THEN the tables exist and the modules write and read them."""
    old = tmp_path / "old.db"
    _previous_release_db(old, first_use=False)
    storage = SqliteStorage(old)
    assert member_qr.refusals(storage) == []
    assert member_qr.legacy_allowed(storage, "s1") is False
    member_qr.set_legacy_policy(storage, "s1", True)
    assert member_qr.legacy_allowed(storage, "s1") is True
    assert unredeem.unredemptions(storage) == []
    cli_reconcile.close(storage, "comp-1", "waived")
    assert [i["state"] for i in cli_reconcile.flagged(storage, open_only=False)] == ["closed"]
    with storage.transaction("unredeem") as conn:
        row = unredeem.unredeem_in(conn, redemption_id="red-x", unredeem_id="ref-x.1", member_id="m1")
    assert row["state"] == unredeem.WAITING
    assert _columns(old) == _columns(_fresh(tmp_path))


def _fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    if not path.exists():
        SqliteStorage(path).close()
    return path


def test_reopening_an_upgraded_database_changes_nothing(tmp_path: Path) -> None:
    """Migrations run once: a second open of an upgraded database records nothing new and keeps its rows."""
    old = tmp_path / "old.db"
    _previous_release_db(old, first_use=True)
    SqliteStorage(old).close()
    with sqlite3.connect(old) as conn:
        before = conn.execute("SELECT version, applied_at_ms FROM schema_migrations").fetchall()
    conn.close()
    storage = SqliteStorage(old)
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version, applied_at_ms FROM schema_migrations").fetchall() == before
    conn.close()
    assert len(member_qr.refusals(storage)) == 1

"""The SQLite schema of the reference cloud: its migrations, and which table serves each stream.

Change sequence
    A single global counter (`seq_counter`, one row) is bumped inside every write transaction; each
    replicated row (members, tags, templates, coupons) carries the seq of its last write, and a
    deletion replaces the row by a tombstone `(stream, key, site_id, seq)` with a fresh seq.
    `changes()` merges rows and tombstones of one stream in seq order, scoped to one site (tags,
    templates and coupons through their member's site), which is what `Sync.Pull` serves.
"""

from __future__ import annotations

import sqlite3

from cloud_stub.storage.base import (
    STREAM_COUPONS,
    STREAM_MEMBERS,
    STREAM_TAGS,
    STREAM_TEMPLATES,
    now_ms,
)

# Ordered migrations: (version, statements). Append only; never edit an applied one.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE seq_counter (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            value INTEGER NOT NULL
        );
        INSERT INTO seq_counter (id, value) VALUES (1, 0);
        CREATE TABLE sites (
            site_id TEXT PRIMARY KEY,
            name TEXT NOT NULL
        );
        CREATE TABLE stores (
            store_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL
        );
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            points INTEGER NOT NULL,
            tier_keep_points INTEGER NOT NULL,
            phone_hash TEXT NOT NULL,
            phone_last4 TEXT NOT NULL,
            gender TEXT NOT NULL,
            birthday TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX members_site_seq ON members (site_id, seq);
        CREATE TABLE tags (
            tag_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            score REAL NOT NULL,
            computed_at_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX tags_seq ON tags (seq);
        CREATE INDEX tags_member ON tags (member_id);
        CREATE TABLE consents (
            consent_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            text_version TEXT NOT NULL,
            agreed_at_ms INTEGER NOT NULL,
            withdrawn_at_ms INTEGER
        );
        CREATE INDEX consents_member ON consents (member_id);
        CREATE TABLE templates (
            template_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            consent_id TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            weight REAL NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX templates_seq ON templates (seq);
        CREATE INDEX templates_member ON templates (member_id);
        CREATE TABLE coupons (
            coupon_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            title TEXT NOT NULL,
            kind INTEGER NOT NULL,
            value_cents INTEGER NOT NULL,
            threshold_cents INTEGER NOT NULL,
            store_ids TEXT NOT NULL,
            valid_from_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            usage_hint TEXT NOT NULL,
            status INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX coupons_seq ON coupons (seq);
        CREATE INDEX coupons_member ON coupons (member_id);
        CREATE TABLE tombstones (
            stream INTEGER NOT NULL,
            key TEXT NOT NULL,
            site_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (stream, key, site_id)
        );
        CREATE INDEX tombstones_scope ON tombstones (stream, site_id, seq);
        """,
    ),
]

# Per stream: table, key column, and how a row is scoped to a site.
STREAM_TABLES: dict[int, tuple[str, str]] = {
    STREAM_MEMBERS: ("members", "member_id"),
    STREAM_TAGS: ("tags", "tag_id"),
    STREAM_TEMPLATES: ("templates", "template_id"),
    STREAM_COUPONS: ("coupons", "coupon_id"),
}


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every migration not yet recorded in `schema_migrations`, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)"
    )
    for version, script in MIGRATIONS:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if not done:
                # executescript() would commit; run statement by statement inside our transaction.
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?, ?)",
                    (version, now_ms()),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

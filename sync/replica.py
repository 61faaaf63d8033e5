"""The device's local replica of CRM data: SQLite in WAL mode, shared by the app and the daemon.

The sync daemon writes the replica tables; the device app only reads them (and, in later issues,
writes its outbox and local tables). A pulled batch and its stream cursor commit in one
transaction, so a crash between the two can neither skip nor double-apply a change.

synchronous=FULL: in WAL mode NORMAL may lose the last commits on power loss. For replica rows
that would only mean pulling them again, but the cursor table and the outbox share this file and
an acknowledged-then-lost event is not recoverable, so every commit is made durable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from api.v1 import crm_pb2, sync_pb2
from sync.crypto import TemplateCipher
from sync.errors import ReplicaError

BUSY_TIMEOUT_MS = 5000
STREAM_NAMES = {
    sync_pb2.STREAM_MEMBERS: "members",
    sync_pb2.STREAM_TAGS: "tags",
    sync_pb2.STREAM_TEMPLATES: "templates",
    sync_pb2.STREAM_COUPONS: "coupons",
}


def _migration_1(db: sqlite_utils.Database) -> None:
    db["members"].create(
        {"member_id": str, "name": str, "tier": str, "points": int, "tier_keep_points": int,
         "phone_last4": str, "gender": str, "birthday": str, "site_id": str, "updated_at_ms": int},
        pk="member_id",
    )
    db["tags"].create(
        {"tag_id": str, "member_id": str, "kind": str, "value": str, "score": float,
         "computed_at_ms": int, "valid_until_ms": int},
        pk="tag_id",
    )
    db["tags"].create_index(["member_id"])
    db["templates"].create(
        {"template_id": str, "member_id": str, "model": str, "sealed": bytes, "consent_id": str,
         "created_at_ms": int, "weight": float},
        pk="template_id",
    )
    db["templates"].create_index(["member_id"])
    db["coupons"].create(
        {"coupon_id": str, "member_id": str, "title": str, "kind": int, "value_cents": int,
         "threshold_cents": int, "store_ids": str, "valid_from_ms": int, "valid_until_ms": int,
         "usage_hint": str, "status": int},
        pk="coupon_id",
    )
    db["coupons"].create_index(["member_id"])
    db["cursors"].create({"stream": str, "seq": int}, pk="stream")


def _migration_2(db: sqlite_utils.Database) -> None:
    # Device-local tables (never written by the sync daemon): "not me" feedback on a face match, and
    # the per-template weight factor it produced. Weights multiply the synced template weight.
    db["feedback_events"].create(
        {"event_id": int, "kind": str, "member_id": str, "template_id": str, "score": float,
         "factor_after": float, "created_at_ms": int},
        pk="event_id",
    )
    db["template_feedback"].create({"template_id": str, "member_id": str, "factor": float}, pk="template_id")


MIGRATIONS = [_migration_1, _migration_2]


@dataclass(frozen=True)
class TemplateRow:
    """A decrypted template, in RAM only."""

    template_id: str
    member_id: str
    model: str
    vector: np.ndarray
    weight: float


class Replica:
    """One SQLite replica file. Thread-safe: one connection guarded by a lock."""

    def __init__(self, path: Path, cipher: TemplateCipher) -> None:
        self.path = path
        self.cipher = cipher
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.Error as err:
            raise ReplicaError(f"cannot open replica {path}: {err}") from err

    def _migrate(self) -> None:
        db = sqlite_utils.Database(self._conn)
        with self._tx():
            self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
            done = {r[0] for r in self._conn.execute("SELECT version FROM schema_migrations")}
            for version, migration in enumerate(MIGRATIONS, 1):
                if version not in done:
                    migration(db)
                    self._conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (version,))

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._conn.close()

    # -- cursors and batches (written by the sync daemon) ---------------------------------------

    def cursors(self) -> dict[int, int]:
        """Last applied sequence per stream (by sync_pb2.Stream value)."""
        with self._lock:
            rows = dict(self._conn.execute("SELECT stream, seq FROM cursors").fetchall())
        return {stream: int(rows.get(name, 0)) for stream, name in STREAM_NAMES.items()}

    def apply_batch(self, batch: sync_pb2.StreamBatch) -> int:
        """Apply one pulled batch and advance its cursor in the same transaction; returns rows changed."""
        name = STREAM_NAMES.get(batch.stream)
        if name is None:
            raise ReplicaError(f"cloud sent a batch for unknown stream {batch.stream}")
        try:
            with self._tx() as conn:
                for change in batch.changes:
                    self._apply_change(conn, name, change)
                conn.execute(
                    "INSERT INTO cursors (stream, seq) VALUES (?, ?) "
                    "ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq",
                    (name, batch.next_seq),
                )
        except sqlite3.Error as err:
            raise ReplicaError(f"cannot apply {name} batch to {self.path}: {err}") from err
        return len(batch.changes)

    def _apply_change(self, conn: sqlite3.Connection, table: str, change: sync_pb2.Change) -> None:
        pk = {"members": "member_id", "tags": "tag_id", "templates": "template_id", "coupons": "coupon_id"}[table]
        if change.deleted:
            conn.execute(f"DELETE FROM {table} WHERE {pk} = ?", (change.key,))
            if table == "members":
                # A deleted member takes every derived row with it, biometric data first.
                for child in ("templates", "tags", "coupons"):
                    conn.execute(f"DELETE FROM {child} WHERE member_id = ?", (change.key,))
            return
        row = self._row_for(table, change)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))

    def _row_for(self, table: str, change: sync_pb2.Change) -> dict[str, Any]:
        if table == "members":
            m: crm_pb2.Member = change.member
            return {"member_id": m.member_id, "name": m.name, "tier": m.tier, "points": m.points,
                    "tier_keep_points": m.tier_keep_points, "phone_last4": m.phone_last4,
                    "gender": m.gender, "birthday": m.birthday, "site_id": m.site_id,
                    "updated_at_ms": m.updated_at_ms}
        if table == "tags":
            t: crm_pb2.Tag = change.tag
            return {"tag_id": t.tag_id, "member_id": t.member_id, "kind": t.kind, "value": t.value,
                    "score": t.score, "computed_at_ms": t.computed_at_ms, "valid_until_ms": t.valid_until_ms}
        if table == "templates":
            f: crm_pb2.FaceTemplate = change.template
            return {"template_id": f.template_id, "member_id": f.member_id, "model": f.model,
                    "sealed": self.cipher.encrypt(f.template_id, f.vector), "consent_id": f.consent_id,
                    "created_at_ms": f.created_at_ms, "weight": f.weight or 1.0}
        c: crm_pb2.Coupon = change.coupon
        return {"coupon_id": c.coupon_id, "member_id": c.member_id, "title": c.title, "kind": c.kind,
                "value_cents": c.value_cents, "threshold_cents": c.threshold_cents,
                "store_ids": json.dumps(list(c.store_ids)), "valid_from_ms": c.valid_from_ms,
                "valid_until_ms": c.valid_until_ms, "usage_hint": c.usage_hint, "status": c.status}

    # -- reads (the device app) ----------------------------------------------------------------

    def data_version(self) -> int:
        """Changes when another connection (the sync daemon) commits; cheap to poll."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Rows per replica table."""
        with self._lock:
            return {t: int(self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                    for t in STREAM_NAMES.values()}

    def templates(self) -> list[TemplateRow]:
        """Every template, decrypted into RAM."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT template_id, member_id, model, sealed, weight FROM templates ORDER BY template_id"
            ).fetchall()
        out = []
        for r in rows:
            raw = self.cipher.decrypt(r["template_id"], r["sealed"])
            out.append(TemplateRow(r["template_id"], r["member_id"], r["model"],
                                   np.frombuffer(raw, dtype="<f4").copy(), float(r["weight"])))
        return out

    # -- device-local feedback (written by the device app, never by the sync daemon) ------------

    def record_not_me(
        self, member_id: str, template_id: str, score: float, step: float, floor: float, now_ms: int | None = None
    ) -> float:
        """Record a "not me" on a match and lower that template's factor for that member; returns it.

        The factor is multiplied by ``step`` per event and never drops below ``floor``.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            with self._tx() as conn:
                row = conn.execute(
                    "SELECT factor FROM template_feedback WHERE template_id = ? AND member_id = ?",
                    (template_id, member_id),
                ).fetchone()
                factor = max(floor, (float(row[0]) if row else 1.0) * step)
                conn.execute(
                    "INSERT INTO template_feedback (template_id, member_id, factor) VALUES (?, ?, ?) "
                    "ON CONFLICT(template_id) DO UPDATE SET factor = excluded.factor, member_id = excluded.member_id",
                    (template_id, member_id, factor),
                )
                conn.execute(
                    "INSERT INTO feedback_events (kind, member_id, template_id, score, factor_after, created_at_ms) "
                    "VALUES ('not_me', ?, ?, ?, ?, ?)",
                    (member_id, template_id, float(score), factor, now_ms),
                )
        except sqlite3.Error as err:
            raise ReplicaError(f"cannot record feedback in {self.path}: {err}") from err
        return factor

    def template_factors(self) -> dict[str, float]:
        """template_id → weight factor from local feedback (templates without feedback are absent)."""
        with self._lock:
            rows = self._conn.execute("SELECT template_id, factor FROM template_feedback").fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def feedback_events(self) -> list[dict[str, Any]]:
        """Every recorded feedback event, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM feedback_events ORDER BY event_id").fetchall()
        return [dict(r) for r in rows]

    def member(self, member_id: str) -> dict[str, Any] | None:
        """One member's row, or None."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM members WHERE member_id = ?", (member_id,)).fetchone()
        return dict(row) if row else None

    def tags(self, member_id: str, now_ms: int | None = None) -> dict[str, str]:
        """The member's unexpired tags as kind → value."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            rows = self._conn.execute(
                "SELECT kind, value FROM tags WHERE member_id = ? AND (valid_until_ms = 0 OR valid_until_ms > ?) "
                "ORDER BY computed_at_ms",
                (member_id, now_ms),
            ).fetchall()
        return {r["kind"]: r["value"] for r in rows}

    def usable_coupons(self, member_id: str, store_id: str, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Issued, currently valid coupons of the member that this store accepts."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM coupons WHERE member_id = ? AND status = ? AND valid_from_ms <= ? "
                "AND valid_until_ms > ? ORDER BY valid_until_ms, coupon_id",
                (member_id, crm_pb2.COUPON_STATUS_ISSUED, now_ms, now_ms),
            ).fetchall()
        out = []
        for r in rows:
            stores = json.loads(r["store_ids"] or "[]")
            if not stores or store_id in stores:
                out.append(dict(r))
        return out

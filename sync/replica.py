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
from sync.outbox import enqueue

BUSY_TIMEOUT_MS = 5000
# A write transaction waits for another connection's write lock by polling BEGIN IMMEDIATE every ~1 ms
# (SQLite's own busy handler backs off to 100 ms sleeps, so a writer that comes back every few tens of
# ms — the snapshot's chunks — would starve it: it wakes only while the lock is held again).
WRITE_POLL_MS = 1
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


def _migration_3(db: sqlite_utils.Database) -> None:
    # Push (issue 6). outbox: device events in insertion order, written in the same transaction as
    # their local effect; a row leaves only after the cloud's ack. quarantine: events the cloud
    # rejected, with the reason. compensations: corrections the cloud sent back. outbox_streams: the
    # per-stream sequence. sync_status: what the daemon last saw (read by the app and `--status`).
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,"
        " stream TEXT NOT NULL, stream_seq INTEGER NOT NULL, kind TEXT NOT NULL, body BLOB NOT NULL,"
        " sealed INTEGER NOT NULL, created_at_ms INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0)"
    )
    db["outbox_streams"].create({"stream": str, "last_seq": int}, pk="stream")
    db["quarantine"].create(
        {"event_id": str, "stream": str, "stream_seq": int, "kind": str, "body": bytes, "sealed": int,
         "reason": str, "quarantined_at_ms": int}, pk="event_id")
    db["compensations"].create(
        {"compensation_id": str, "kind": str, "cause_event_id": str, "member_id": str, "coupon_id": str,
         "amount_cents": int, "message": str, "created_at_ms": int, "received_at_ms": int, "seen": int},
        pk="compensation_id")
    db["sync_status"].create({"key": str, "value": str}, pk="key")
    # Local effects of device events (the app's own tables).
    db["local_visits"].create({"event_id": str, "member_id": str, "store_id": str, "at_ms": int}, pk="event_id")
    db["local_redemptions"].create({"coupon_id": str, "event_id": str, "member_id": str, "at_ms": int},
                                   pk="coupon_id")
    db["local_payments"].create({"event_id": str, "payment_id": str, "member_id": str, "amount_cents": int,
                                 "at_ms": int}, pk="event_id")
    db["local_points"].create({"event_id": str, "member_id": str, "delta": int, "at_ms": int}, pk="event_id")
    # Incremental gallery reload: every template write takes the next local revision; deletions
    # leave a tombstone with theirs. The app asks for what changed after the revision it has.
    db.execute("ALTER TABLE templates ADD COLUMN rev INTEGER NOT NULL DEFAULT 0")
    db["templates"].create_index(["rev"])
    db["template_tombstones"].create({"template_id": str, "rev": int}, pk="template_id")
    db["template_tombstones"].create_index(["rev"])
    db["local_counters"].create({"name": str, "value": int}, pk="name")


MIGRATIONS = [_migration_1, _migration_2, _migration_3]
_COLUMNS = {
    "members": ("member_id", "name", "tier", "points", "tier_keep_points", "phone_last4", "gender", "birthday",
                "site_id", "updated_at_ms"),
    "tags": ("tag_id", "member_id", "kind", "value", "score", "computed_at_ms", "valid_until_ms"),
    "templates": ("template_id", "member_id", "model", "sealed", "consent_id", "created_at_ms", "weight", "rev"),
    "coupons": ("coupon_id", "member_id", "title", "kind", "value_cents", "threshold_cents", "store_ids",
                "valid_from_ms", "valid_until_ms", "usage_hint", "status"),
}
_PK = {"members": "member_id", "tags": "tag_id", "templates": "template_id", "coupons": "coupon_id"}
_UPSERT = {t: f"INSERT OR REPLACE INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
           for t, c in _COLUMNS.items()}


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
            self._begin_immediate()
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def _begin_immediate(self) -> None:
        """BEGIN IMMEDIATE, polling the write lock every ~WRITE_POLL_MS for up to BUSY_TIMEOUT_MS."""
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        self._conn.execute(f"PRAGMA busy_timeout={WRITE_POLL_MS}")
        try:
            while True:
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) and "busy" not in str(err) or time.monotonic() >= deadline:
                        raise
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

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

    def has_cursors(self) -> bool:
        """False on a replica that never synced (it needs a snapshot, not Pull from 0)."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM cursors LIMIT 1").fetchone() is not None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE) on the replica; sqlite errors become ReplicaError."""
        try:
            with self._tx() as conn:
                yield conn
        except sqlite3.Error as err:
            raise ReplicaError(_explain(err, self.path)) from err

    def apply_batch(self, batch: sync_pb2.StreamBatch) -> int:
        """Apply one pulled batch and advance its cursor in the same transaction; returns rows changed.

        A batch that breaks the protocol (unknown stream, seqs not ascending or not after the cursor, a
        cursor going backwards) is refused whole with a ReplicaError: a garbled answer changes nothing.
        """
        name = STREAM_NAMES.get(batch.stream)
        if name is None:
            raise ReplicaError(f"cloud sent a batch for unknown stream {batch.stream}")
        try:
            with self._tx() as conn:
                row = conn.execute("SELECT seq FROM cursors WHERE stream = ?", (name,)).fetchone()
                cursor = int(row[0]) if row else 0
                last = cursor
                for change in batch.changes:
                    if change.seq <= last:
                        raise ReplicaError(f"cloud sent {name} change seq {change.seq} after {last}: not ascending "
                                           "past the cursor; batch refused")
                    last = change.seq
                if batch.next_seq < last:
                    raise ReplicaError(f"cloud sent {name} next_seq {batch.next_seq} below its own changes "
                                       f"({last}); batch refused")
                self._apply_changes(conn, name, batch.changes)
                conn.execute(
                    "INSERT INTO cursors (stream, seq) VALUES (?, ?) "
                    "ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq",
                    (name, batch.next_seq),
                )
        except sqlite3.Error as err:
            raise ReplicaError(f"cannot apply {name} batch: {_explain(err, self.path)}") from err
        return len(batch.changes)

    def _apply_changes(self, conn: sqlite3.Connection, table: str, changes: Any) -> None:
        # Runs of upserts go through executemany (the cold sync is mostly one long run); a tombstone
        # flushes the run first, so the order of the batch is kept.
        rev = self._next_rev(conn) if table in ("templates", "members") else 0
        run: list[tuple] = []
        for change in changes:
            if change.deleted:
                if run:
                    conn.executemany(_UPSERT[table], run)
                    run = []
                self._delete(conn, table, change.key, rev)
            else:
                run.append(self._row_for(table, change, rev))
        if run:
            conn.executemany(_UPSERT[table], run)

    def _next_rev(self, conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO local_counters (name, value) VALUES ('template_rev', 1) "
                     "ON CONFLICT(name) DO UPDATE SET value = value + 1")
        return int(conn.execute("SELECT value FROM local_counters WHERE name = 'template_rev'").fetchone()[0])

    def _delete(self, conn: sqlite3.Connection, table: str, key: str, rev: int) -> None:
        if table == "templates":
            self._tombstone_templates(conn, [key], rev)
        conn.execute(f"DELETE FROM {table} WHERE {_PK[table]} = ?", (key,))
        if table == "members":
            # A deleted member takes every derived row with it, biometric data first.
            tids = [r[0] for r in conn.execute("SELECT template_id FROM templates WHERE member_id = ?", (key,))]
            self._tombstone_templates(conn, tids, rev)
            for child in ("templates", "tags", "coupons"):
                conn.execute(f"DELETE FROM {child} WHERE member_id = ?", (key,))

    @staticmethod
    def _tombstone_templates(conn: sqlite3.Connection, template_ids: list[str], rev: int) -> None:
        conn.executemany("INSERT OR REPLACE INTO template_tombstones (template_id, rev) VALUES (?, ?)",
                         [(t, rev) for t in template_ids])

    def delete_member_templates(self, conn: sqlite3.Connection, member_id: str) -> int:
        """Inside `transaction()`: drop a member's templates now (consent withdrawn at this device)."""
        tids = [r[0] for r in conn.execute("SELECT template_id FROM templates WHERE member_id = ?", (member_id,))]
        if tids:
            self._tombstone_templates(conn, tids, self._next_rev(conn))
            conn.execute("DELETE FROM templates WHERE member_id = ?", (member_id,))
        return len(tids)

    def _row_for(self, table: str, change: sync_pb2.Change, rev: int) -> tuple:
        if table == "members":
            m: crm_pb2.Member = change.member
            return (m.member_id, m.name, m.tier, m.points, m.tier_keep_points, m.phone_last4, m.gender,
                    m.birthday, m.site_id, m.updated_at_ms)
        if table == "tags":
            t: crm_pb2.Tag = change.tag
            return (t.tag_id, t.member_id, t.kind, t.value, t.score, t.computed_at_ms, t.valid_until_ms)
        if table == "templates":
            f: crm_pb2.FaceTemplate = change.template
            return (f.template_id, f.member_id, f.model, self.cipher.encrypt(f.template_id, f.vector),
                    f.consent_id, f.created_at_ms, f.weight or 1.0, rev)
        c: crm_pb2.Coupon = change.coupon
        return (c.coupon_id, c.member_id, c.title, c.kind, c.value_cents, c.threshold_cents,
                json.dumps(list(c.store_ids)), c.valid_from_ms, c.valid_until_ms, c.usage_hint, c.status)

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

    def template_rev(self) -> int:
        """The latest local template revision (see `template_changes`)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM local_counters WHERE name = 'template_rev'").fetchone()
        return int(row[0]) if row else 0

    def template_changes(self, after_rev: int) -> tuple[int, list[TemplateRow], list[str]]:
        """(revision now, templates written after `after_rev` (decrypted), template ids deleted after it).

        Read in one snapshot, so applying the result to a gallery at `after_rev` gives the gallery of
        the returned revision.
        """
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                rev_row = self._conn.execute("SELECT value FROM local_counters WHERE name = 'template_rev'").fetchone()
                rows = self._conn.execute(
                    "SELECT template_id, member_id, model, sealed, weight FROM templates WHERE rev > ? "
                    "ORDER BY template_id", (after_rev,)).fetchall()
                gone = [r[0] for r in self._conn.execute(
                    "SELECT template_id FROM template_tombstones WHERE rev > ?", (after_rev,))]
            finally:
                self._conn.execute("COMMIT")
        return (int(rev_row[0]) if rev_row else 0), self._decrypt(rows), gone

    def template_counts(self) -> tuple[int, int]:
        """(members with a template, templates), without decrypting anything."""
        with self._lock:
            row = self._conn.execute("SELECT count(DISTINCT member_id), count(*) FROM templates").fetchone()
        return int(row[0]), int(row[1])

    def templates(self) -> list[TemplateRow]:
        """Every template, decrypted into RAM."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT template_id, member_id, model, sealed, weight FROM templates ORDER BY template_id"
            ).fetchall()
        return self._decrypt(rows)

    def _decrypt(self, rows: list[sqlite3.Row]) -> list[TemplateRow]:
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
                # The cloud hears of it through the outbox, committed with the local effect.
                enqueue(conn, self.cipher, "not_me", sync_pb2.NotMeEvent(
                    member_id=member_id, template_id=template_id, score=float(score)), now_ms=now_ms)
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
        with self._lock:
            used = {r[0] for r in self._conn.execute(
                "SELECT coupon_id FROM local_redemptions WHERE member_id = ?", (member_id,))}
        out = []
        for r in rows:
            if r["coupon_id"] in used:
                continue  # redeemed at this device; the cloud has not confirmed it yet
            stores = json.loads(r["store_ids"] or "[]")
            if not stores or store_id in stores:
                out.append(dict(r))
        return out


def _explain(err: sqlite3.Error, path: Path) -> str:
    """A sqlite error as a sentence that says what to do."""
    msg = str(err)
    if "full" in msg.lower():
        return f"{msg}: the device's storage for {path} is full; free space (nothing was written)"
    if "locked" in msg.lower() or "busy" in msg.lower():
        return f"{msg}: another process holds {path}; retrying later"
    return f"{msg} ({path})"

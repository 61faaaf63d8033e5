"""`SqliteStorage`: the reference cloud's `Storage` on one SQLite file.

Concurrency
    SQLite in WAL mode with a busy timeout; every public method opens its own short-lived connection,
    so one `SqliteStorage` is safe to share between the gRPC worker threads and between processes.
    Every write is one `BEGIN IMMEDIATE` transaction: nothing partial is left on error.

The schema and the change sequence are in `schema.py`, connections and the change-log primitives
in `db.py`, and the sealing of face templates at rest in `crypto.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from api.v1 import crm_pb2
from cloud_stub.errors import InvalidRequestError, NotFoundError, StorageError
from cloud_stub.storage import db
from cloud_stub.storage.base import (
    STREAM_COUPONS,
    STREAM_MEMBERS,
    STREAM_TAGS,
    STREAM_TEMPLATES,
    Change,
    Storage,
    now_ms,
    phone_hash,
    vector_bytes,
)
from cloud_stub.storage.crypto import TemplateSealer
from cloud_stub.storage.schema import MIGRATIONS, STREAM_TABLES

#: (stream, head seq, column names, columns (one tuple of values each), rows) — one snapshot page.
SnapshotPage = tuple[int, int, tuple[str, ...], list[tuple[Any, ...]], int]
#: Template rows per snapshot page: ~1.2 MB of vectors, well under the 4 MiB message limit.
SNAPSHOT_TEMPLATE_PAGE_ROWS = 2000
#: Columns a snapshot serves per stream (the device replica's; templates' `vector` is unsealed).
SNAPSHOT_COLUMNS: dict[int, tuple[str, ...]] = {
    STREAM_MEMBERS: ("member_id", "name", "tier", "points", "tier_keep_points", "phone_last4", "gender",
                     "birthday", "site_id", "updated_at_ms"),
    STREAM_TAGS: ("tag_id", "member_id", "kind", "value", "score", "computed_at_ms", "valid_until_ms"),
    STREAM_TEMPLATES: ("template_id", "member_id", "model", "vector", "consent_id", "created_at_ms", "weight"),
    STREAM_COUPONS: ("coupon_id", "member_id", "title", "kind", "value_cents", "threshold_cents", "store_ids",
                     "valid_from_ms", "valid_until_ms", "usage_hint", "status"),
}


class SqliteStorage(Storage):
    """`Storage` on one SQLite file (WAL), with face templates sealed by AES-GCM (see `crypto.py`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.key_path = self.path.with_name(self.path.name + ".key")
        self._sealer = TemplateSealer(self.key_path)
        self._local = threading.local()
        self._local_lock = threading.Lock()
        self._local_conns: list[sqlite3.Connection] = []
        if not self.path.parent.is_dir():
            raise StorageError(f"cannot open database {self.path}: folder {self.path.parent} does not exist")
        with db.translate_errors(f"open database {self.path}", self.path):
            conn = db.connect(self.path)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                db.migrate(conn, MIGRATIONS)
            finally:
                conn.close()

    def _tx(self, what: str, *, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One transaction on a fresh connection to this database (see `db.transaction`)."""
        return db.transaction(self.path, what, write=write)

    # --- sites and stores -------------------------------------------------------------------
    def upsert_site(self, site_id: str, name: str) -> None:
        if not site_id:
            raise InvalidRequestError("site_id must not be empty")
        with self._tx("upsert site") as conn:
            conn.execute(
                "INSERT INTO sites (site_id, name) VALUES (?, ?)"
                " ON CONFLICT (site_id) DO UPDATE SET name = excluded.name",
                (site_id, name),
            )

    def upsert_store(self, store_id: str, site_id: str, name: str, brand: str | None = None) -> None:
        if not store_id:
            raise InvalidRequestError("store_id must not be empty")
        with self._tx("upsert store") as conn:
            if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (site_id,)).fetchone() is None:
                raise NotFoundError(f"site {site_id!r} does not exist")
            conn.execute(
                "INSERT INTO stores (store_id, site_id, name, brand) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (store_id) DO UPDATE SET site_id = excluded.site_id, name = excluded.name,"
                " brand = CASE WHEN ? IS NULL THEN stores.brand ELSE excluded.brand END",
                (store_id, site_id, name, brand or "", brand),
            )

    def list_stores(self, site_id: str) -> list[dict[str, Any]]:
        with self._tx("list stores", write=False) as conn:
            rows = conn.execute(
                "SELECT store_id, site_id, name, brand FROM stores WHERE site_id = ? ORDER BY store_id",
                (site_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    # --- members ----------------------------------------------------------------------------
    def upsert_member(
        self,
        *,
        member_id: str,
        site_id: str,
        name: str,
        tier: str = "普卡",
        points: int = 0,
        tier_keep_points: int = 0,
        phone: str | None = None,
        phone_last4: str | None = None,
        gender: str = "",
        birthday: str = "",
        updated_at_ms: int | None = None,
    ) -> int:
        if not member_id or not site_id:
            raise InvalidRequestError("member_id and site_id must not be empty")
        if gender not in ("", "F", "M"):
            raise InvalidRequestError(f"gender must be 'F', 'M' or '', got {gender!r}")
        digits = "".join(ch for ch in (phone or "") if ch.isdigit())
        with self._tx("upsert member") as conn:
            old = conn.execute(
                "SELECT site_id, phone_hash, phone_last4 FROM members WHERE member_id = ?", (member_id,)
            ).fetchone()
            # Without a new phone, an update keeps the phone it had.
            hashed = phone_hash(phone) if phone else (old["phone_hash"] if old else "")
            if phone_last4 is not None:
                last4 = phone_last4
            else:
                last4 = digits[-4:] if phone else (old["phone_last4"] if old else "")
            seq = db.next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO members (member_id, site_id, name, tier, points, tier_keep_points,"
                " phone_hash, phone_last4, gender, birthday, updated_at_ms, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (member_id, site_id, name, tier, int(points), int(tier_keep_points), hashed, last4,
                 gender, birthday, updated_at_ms if updated_at_ms is not None else now_ms(), seq),
            )
            db.clear_tombstone(conn, STREAM_MEMBERS, member_id, site_id)
            if old is not None and old["site_id"] != site_id:
                # The member left a site: that site's devices must drop it.
                db.tombstone(conn, STREAM_MEMBERS, member_id, old["site_id"])
                seq = self._bump_member_children(conn, member_id, old["site_id"], site_id) or seq
        return seq

    def _bump_member_children(
        self, conn: sqlite3.Connection, member_id: str, old_site: str, new_site: str
    ) -> int:
        """After a site move: tombstone children in the old site and re-serve them in the new one."""
        seq = 0
        for stream in (STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS):
            table, key = STREAM_TABLES[stream]
            for (k,) in conn.execute(f"SELECT {key} FROM {table} WHERE member_id = ?", (member_id,)).fetchall():
                db.tombstone(conn, stream, k, old_site)
                db.clear_tombstone(conn, stream, k, new_site)
                seq = db.next_seq(conn)
                conn.execute(f"UPDATE {table} SET seq = ? WHERE {key} = ?", (seq, k))
        return seq

    def get_member(self, member_id: str) -> dict[str, Any]:
        with self._tx("get member", write=False) as conn:
            row = conn.execute("SELECT * FROM members WHERE member_id = ?", (member_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"member {member_id!r} does not exist")
        return dict(row)

    def list_members(self, site_id: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT m.*, (SELECT COUNT(*) FROM templates t WHERE t.member_id = m.member_id) AS templates,"
            " (SELECT COUNT(*) FROM coupons c WHERE c.member_id = m.member_id) AS coupons"
            " FROM members m"
        )
        args: tuple[Any, ...] = ()
        if site_id is not None:
            sql += " WHERE m.site_id = ?"
            args = (site_id,)
        with self._tx("list members", write=False) as conn:
            rows = conn.execute(sql + " ORDER BY m.member_id", args).fetchall()
        return [dict(r) for r in rows]

    def delete_member(self, member_id: str) -> int:
        with self._tx("delete member") as conn:
            site = db.member_site(conn, member_id)
            for stream in (STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS):
                table, key = STREAM_TABLES[stream]
                for (k,) in conn.execute(
                    f"SELECT {key} FROM {table} WHERE member_id = ? ORDER BY {key}", (member_id,)
                ).fetchall():
                    db.tombstone(conn, stream, k, site)
                conn.execute(f"DELETE FROM {table} WHERE member_id = ?", (member_id,))
            conn.execute(
                "UPDATE consents SET withdrawn_at_ms = ? WHERE member_id = ? AND withdrawn_at_ms IS NULL",
                (now_ms(), member_id),
            )
            conn.execute("DELETE FROM members WHERE member_id = ?", (member_id,))
            return db.tombstone(conn, STREAM_MEMBERS, member_id, site)

    # --- tags -------------------------------------------------------------------------------
    def upsert_tag(
        self,
        *,
        tag_id: str,
        member_id: str,
        kind: str,
        value: str,
        score: float = 0.0,
        computed_at_ms: int | None = None,
        valid_until_ms: int = 0,
    ) -> int:
        if not tag_id or not kind:
            raise InvalidRequestError("tag_id and kind must not be empty")
        with self._tx("upsert tag") as conn:
            site = db.member_site(conn, member_id)
            seq = db.next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO tags (tag_id, member_id, kind, value, score, computed_at_ms,"
                " valid_until_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tag_id, member_id, kind, value, float(score),
                 computed_at_ms if computed_at_ms is not None else now_ms(), int(valid_until_ms), seq),
            )
            db.clear_tombstone(conn, STREAM_TAGS, tag_id, site)
        return seq

    def _delete_child(self, stream: int, key_value: str) -> int:
        table, key = STREAM_TABLES[stream]
        with self._tx(f"delete from {table}") as conn:
            row = conn.execute(
                f"SELECT member_id FROM {table} WHERE {key} = ?", (key_value,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"{key} {key_value!r} does not exist")
            site = db.member_site(conn, row[0])
            conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (key_value,))
            return db.tombstone(conn, stream, key_value, site)

    def delete_tag(self, tag_id: str) -> int:
        return self._delete_child(STREAM_TAGS, tag_id)

    # --- consent and templates --------------------------------------------------------------
    def add_consent(
        self,
        *,
        member_id: str,
        device_id: str,
        text_version: str,
        agreed_at_ms: int | None = None,
        consent_id: str | None = None,
    ) -> str:
        if not text_version:
            raise InvalidRequestError("a consent needs the version of the text the member agreed to")
        cid = consent_id or f"consent-{uuid.uuid4()}"
        with self._tx("add consent") as conn:
            db.member_site(conn, member_id)
            old = conn.execute(
                "SELECT member_id, withdrawn_at_ms FROM consents WHERE consent_id = ?", (cid,)
            ).fetchone()
            if old is not None:
                if old["member_id"] != member_id:
                    raise InvalidRequestError(f"consent {cid!r} belongs to another member")
                if old["withdrawn_at_ms"] is not None:
                    raise InvalidRequestError(
                        f"consent {cid!r} was withdrawn; record a new consent with a new id"
                    )
                return cid  # idempotent re-submission
            conn.execute(
                "INSERT INTO consents (consent_id, member_id, device_id, text_version, agreed_at_ms,"
                " withdrawn_at_ms) VALUES (?, ?, ?, ?, ?, NULL)",
                (cid, member_id, device_id, text_version,
                 agreed_at_ms if agreed_at_ms is not None else now_ms()),
            )
        return cid

    def add_template(
        self,
        *,
        member_id: str,
        consent_id: str,
        model: str,
        vector: bytes | Sequence[float],
        template_id: str | None = None,
        weight: float = 1.0,
        created_at_ms: int | None = None,
    ) -> str:
        if not model:
            raise InvalidRequestError("a template needs the name of its embedding model")
        data = vector_bytes(vector)
        tid = template_id or f"tpl-{uuid.uuid4()}"
        sealed = self._sealer.seal(tid, member_id, data)
        with self._tx("add template") as conn:
            site = db.member_site(conn, member_id)
            consent = conn.execute(
                "SELECT member_id, withdrawn_at_ms FROM consents WHERE consent_id = ?", (consent_id,)
            ).fetchone()
            if consent is None or consent["member_id"] != member_id:
                raise InvalidRequestError(
                    f"member {member_id!r} has no consent {consent_id!r}: record consent before enrolling a face"
                )
            if consent["withdrawn_at_ms"] is not None:
                raise InvalidRequestError(
                    f"consent {consent_id!r} of member {member_id!r} was withdrawn: no face may be stored"
                )
            other = conn.execute(
                "SELECT member_id FROM templates WHERE template_id = ?", (tid,)
            ).fetchone()
            if other is not None and other[0] != member_id:
                raise InvalidRequestError(f"template {tid!r} belongs to another member")
            seq = db.next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO templates (template_id, member_id, model, vector, consent_id,"
                " created_at_ms, weight, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tid, member_id, model, sealed, consent_id,
                 created_at_ms if created_at_ms is not None else now_ms(), float(weight), seq),
            )
            db.clear_tombstone(conn, STREAM_TEMPLATES, tid, site)
        return tid

    def delete_template(self, template_id: str) -> int:
        return self._delete_child(STREAM_TEMPLATES, template_id)

    def withdraw_consent(self, member_id: str) -> int:
        with self._tx("withdraw consent") as conn:
            site = db.member_site(conn, member_id)
            conn.execute(
                "UPDATE consents SET withdrawn_at_ms = ? WHERE member_id = ? AND withdrawn_at_ms IS NULL",
                (now_ms(), member_id),
            )
            keys = [k for (k,) in conn.execute(
                "SELECT template_id FROM templates WHERE member_id = ? ORDER BY template_id", (member_id,)
            ).fetchall()]
            for k in keys:
                db.tombstone(conn, STREAM_TEMPLATES, k, site)
            conn.execute("DELETE FROM templates WHERE member_id = ?", (member_id,))
        return len(keys)

    # --- coupons ----------------------------------------------------------------------------
    def upsert_coupon(
        self,
        *,
        coupon_id: str,
        member_id: str,
        title: str,
        kind: int,
        value_cents: int,
        threshold_cents: int = 0,
        store_ids: Sequence[str] = (),
        valid_from_ms: int,
        valid_until_ms: int,
        usage_hint: str = "",
        status: int = crm_pb2.COUPON_STATUS_ISSUED,
        campaign_id: str = "",
    ) -> int:
        if not coupon_id:
            raise InvalidRequestError("coupon_id must not be empty")
        if kind not in crm_pb2.CouponKind.values() or kind == crm_pb2.COUPON_KIND_UNSPECIFIED:
            raise InvalidRequestError(f"unknown coupon kind {kind!r}")
        if valid_until_ms < valid_from_ms:
            raise InvalidRequestError("coupon valid_until_ms is before valid_from_ms")
        with self._tx("upsert coupon") as conn:
            site = db.member_site(conn, member_id)
            seq = db.next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO coupons (coupon_id, member_id, title, kind, value_cents,"
                " threshold_cents, store_ids, valid_from_ms, valid_until_ms, usage_hint, status, seq,"
                " campaign_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (coupon_id, member_id, title, int(kind), int(value_cents), int(threshold_cents),
                 json.dumps(list(store_ids)), int(valid_from_ms), int(valid_until_ms), usage_hint,
                 int(status), seq, campaign_id),
            )
            db.clear_tombstone(conn, STREAM_COUPONS, coupon_id, site)
        return seq

    def delete_coupon(self, coupon_id: str) -> int:
        return self._delete_child(STREAM_COUPONS, coupon_id)

    # --- domain transactions ------------------------------------------------------------------
    def transaction(self, what: str, *, write: bool = True) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._tx(what, write=write)

    # --- replication ------------------------------------------------------------------------
    def head_seq(self) -> int:
        # A persistent read connection per worker thread: an empty pull costs one indexed read,
        # not a connect (the hot path of 200 devices polling).
        conn = getattr(self._local, "conn", None)
        with db.translate_errors("read head seq", self.path):
            if conn is None:
                conn = db.connect(self.path)
                self._local.conn = conn
                with self._local_lock:
                    self._local_conns.append(conn)
            return int(conn.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()[0])

    def close(self) -> None:
        with self._local_lock:
            conns, self._local_conns = self._local_conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def changes(
        self, stream: int, site_id: str, after_seq: int, limit: int
    ) -> tuple[list[Change], bool]:
        if stream not in STREAM_TABLES:
            raise InvalidRequestError(f"unknown stream {stream!r}")
        if limit <= 0:
            raise InvalidRequestError(f"limit must be positive, got {limit}")
        table, key = STREAM_TABLES[stream]
        if stream == STREAM_MEMBERS:
            rows_sql = (
                "SELECT * FROM members WHERE site_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            )
        else:
            # CROSS JOIN fixes the loop order: walk the child table in seq order (its seq index) and
            # stop after `limit` rows of the site. Left to itself the planner walks all of the site's
            # members and sorts every child row for each page — quadratic over a cold sync.
            rows_sql = (
                f"SELECT x.* FROM {table} x CROSS JOIN members m ON m.member_id = x.member_id"
                " WHERE m.site_id = ? AND x.seq > ? ORDER BY x.seq LIMIT ?"
            )
        # One read transaction: rows and tombstones come from the same snapshot.
        with self._tx(f"read {table} changes", write=False) as conn:
            rows = conn.execute(rows_sql, (site_id, after_seq, limit + 1)).fetchall()
            tombs = conn.execute(
                "SELECT seq, key FROM tombstones WHERE stream = ? AND site_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (stream, site_id, after_seq, limit + 1),
            ).fetchall()
        merged: list[Change] = [(int(r["seq"]), str(r[key]), False, self._row(stream, r)) for r in rows]
        merged += [(int(t["seq"]), str(t["key"]), True, None) for t in tombs]
        merged.sort(key=lambda c: c[0])
        return merged[:limit], len(merged) > limit

    def snapshot(self, site_id: str, page_rows: int) -> Iterator[SnapshotPage]:
        """The site's replicated rows as column pages, all read in one transaction (one snapshot).

        Yields (stream, head seq, column names, columns, row count); every stream ends with a page,
        possibly empty. Each table is one ordered scan (children through the CROSS JOIN of
        `changes`); templates are unsealed here, as Pull serves them. No tombstones: a snapshot is
        the whole state, and Pull continues from the head seq read in the same transaction.
        """
        if page_rows <= 0:
            raise InvalidRequestError(f"page_rows must be positive, got {page_rows}")
        with self._tx("read snapshot", write=False) as conn:
            conn.row_factory = None  # plain tuples: this connection only serves the snapshot's columns
            head = int(conn.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()[0])
            for stream, columns in SNAPSHOT_COLUMNS.items():
                table = STREAM_TABLES[stream][0]
                cols = ", ".join(f"x.{c}" for c in columns)
                if stream == STREAM_MEMBERS:
                    sql = f"SELECT {cols} FROM members x WHERE x.site_id = ? AND x.seq <= ? ORDER BY x.seq"
                else:
                    sql = (f"SELECT {cols} FROM {table} x CROSS JOIN members m ON m.member_id = x.member_id"
                           " WHERE m.site_id = ? AND x.seq <= ? ORDER BY x.seq")
                cur = conn.execute(sql, (site_id, head))
                size = min(page_rows, SNAPSHOT_TEMPLATE_PAGE_ROWS) if stream == STREAM_TEMPLATES else page_rows
                while True:
                    rows = cur.fetchmany(size)
                    if stream == STREAM_TEMPLATES and rows:
                        unseal = self._sealer.unseal
                        rows = [(t, m, model, unseal(t, m, v), *rest) for t, m, model, v, *rest in rows]
                    yield stream, head, columns, (list(zip(*rows, strict=True)) if rows else [() for _ in columns]), len(rows)
                    if len(rows) < size:
                        break

    def _row(self, stream: int, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        if stream == STREAM_TEMPLATES:
            out["vector"] = self._sealer.unseal(out["template_id"], out["member_id"], out["vector"])
        elif stream == STREAM_COUPONS:
            out["store_ids"] = json.loads(out["store_ids"])
        return out

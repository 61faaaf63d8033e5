"""Storage of the reference cloud: one abstract `Storage` interface, and `SqliteStorage` behind it.

Change sequence
    A single global counter (`seq_counter`, one row) is bumped inside every write transaction; each
    replicated row (members, tags, templates, coupons) carries the seq of its last write, and a
    deletion replaces the row by a tombstone `(stream, key, site_id, seq)` with a fresh seq.
    `changes()` merges rows and tombstones of one stream in seq order, scoped to one site (tags,
    templates and coupons through their member's site), which is what `Sync.Pull` serves.

Face templates at rest
    A template vector (float32 little-endian bytes) is never stored in plaintext: it is sealed with
    AES-256-GCM under a data key kept in a file next to the database, `<db>.key` (32 random bytes,
    mode 0600, created on first use). Each blob is `nonce (12 bytes) || ciphertext+tag`, and the
    template id and member id are bound as associated data, so a blob copied onto another row does
    not decrypt. Vectors are decrypted only when served. A production cloud would keep the key in a
    KMS/HSM and rotate it; the file key keeps the reference cloud self-contained.

Concurrency
    SQLite in WAL mode with a busy timeout; every public method opens its own short-lived connection,
    so one `SqliteStorage` is safe to share between the gRPC worker threads and between processes.
    Every write is one `BEGIN IMMEDIATE` transaction: nothing partial is left on error.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.v1 import crm_pb2, sync_pb2
from cloud_stub.errors import (
    CloudError,
    InvalidRequestError,
    NotFoundError,
    StorageBusyError,
    StorageError,
)

#: Milliseconds a connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_MS = 5000

STREAM_MEMBERS = sync_pb2.STREAM_MEMBERS
STREAM_TAGS = sync_pb2.STREAM_TAGS
STREAM_TEMPLATES = sync_pb2.STREAM_TEMPLATES
STREAM_COUPONS = sync_pb2.STREAM_COUPONS
STREAMS = (STREAM_MEMBERS, STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS)

#: A change as served by `Storage.changes`: (seq, key, deleted, row or None for a tombstone).
Change = tuple[int, str, bool, "dict[str, Any] | None"]

_NONCE_BYTES = 12
_KEY_BYTES = 32

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
_STREAM_TABLES: dict[int, tuple[str, str]] = {
    STREAM_MEMBERS: ("members", "member_id"),
    STREAM_TAGS: ("tags", "tag_id"),
    STREAM_TEMPLATES: ("templates", "template_id"),
    STREAM_COUPONS: ("coupons", "coupon_id"),
}


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def phone_hash(phone: str) -> str:
    """A stable hash of a phone number's digits (the full number is never stored)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return hashlib.sha256(f"joyedge-phone:{digits}".encode()).hexdigest() if digits else ""


def _vector_bytes(vector: bytes | bytearray | memoryview | Sequence[float]) -> bytes:
    """float32 little-endian bytes of a vector given as bytes or as a sequence of floats (numpy too)."""
    if isinstance(vector, (bytes, bytearray, memoryview)):
        data = bytes(vector)
    else:
        values = [float(v) for v in vector]
        data = struct.pack(f"<{len(values)}f", *values)
    if not data or len(data) % 4:
        raise InvalidRequestError(
            f"template vector must be non-empty float32 bytes, got {len(data)} bytes"
        )
    return data


class Storage(abc.ABC):
    """What the reference cloud needs from a database. SQLite by default; PostgreSQL can serve a fleet.

    Writes return the change seq they were given. Every write is atomic.
    """

    # --- sites and stores -------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_site(self, site_id: str, name: str) -> None:
        """Create or rename a site."""

    @abc.abstractmethod
    def upsert_store(self, store_id: str, site_id: str, name: str) -> None:
        """Create or rename a store of an existing site (NotFoundError when the site is unknown)."""

    @abc.abstractmethod
    def list_stores(self, site_id: str) -> list[dict[str, Any]]:
        """The stores of a site, ordered by store_id."""

    # --- members ----------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Create or update a member. `phone` is hashed; only its last 4 digits are kept in clear."""

    @abc.abstractmethod
    def get_member(self, member_id: str) -> dict[str, Any]:
        """One member row (NotFoundError when absent)."""

    @abc.abstractmethod
    def list_members(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Members (of one site, or all) ordered by member_id, each with a `templates` count."""

    @abc.abstractmethod
    def delete_member(self, member_id: str) -> int:
        """Delete a member with its tags, templates and coupons (tombstones for each); withdraws consents."""

    # --- tags -------------------------------------------------------------------------------
    @abc.abstractmethod
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
        """Create or update a tag of an existing member."""

    @abc.abstractmethod
    def delete_tag(self, tag_id: str) -> int:
        """Delete a tag (tombstone)."""

    # --- consent and templates --------------------------------------------------------------
    @abc.abstractmethod
    def add_consent(
        self,
        *,
        member_id: str,
        device_id: str,
        text_version: str,
        agreed_at_ms: int | None = None,
        consent_id: str | None = None,
    ) -> str:
        """Record a member's consent to face recognition; returns the consent id."""

    @abc.abstractmethod
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
        """Store a face template under an existing, not withdrawn consent of that member; returns its id."""

    @abc.abstractmethod
    def delete_template(self, template_id: str) -> int:
        """Delete one template (tombstone)."""

    @abc.abstractmethod
    def withdraw_consent(self, member_id: str) -> int:
        """Withdraw every consent of a member and delete their templates; returns how many were deleted."""

    # --- coupons ----------------------------------------------------------------------------
    @abc.abstractmethod
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
    ) -> int:
        """Create or update a coupon of an existing member."""

    @abc.abstractmethod
    def delete_coupon(self, coupon_id: str) -> int:
        """Delete a coupon (tombstone)."""

    # --- replication ------------------------------------------------------------------------
    @abc.abstractmethod
    def changes(
        self, stream: int, site_id: str, after_seq: int, limit: int
    ) -> tuple[list[Change], bool]:
        """Up to `limit` changes of `stream` for `site_id` with seq > `after_seq`, in seq order.

        Returns (changes, has_more); each change is (seq, key, deleted, row dict or None).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (nothing to do for a connection-per-call backend)."""


class SqliteStorage(Storage):
    """`Storage` on one SQLite file (WAL), with face templates sealed by AES-GCM (see module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.key_path = self.path.with_name(self.path.name + ".key")
        self._aead: AESGCM | None = None
        self._key_lock = threading.Lock()
        if not self.path.parent.is_dir():
            raise StorageError(f"cannot open database {self.path}: folder {self.path.parent} does not exist")
        with self._translate(f"open database {self.path}"):
            conn = self._open()
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                self._migrate(conn)
            finally:
                conn.close()

    # --- plumbing ---------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """The one place where sqlite3 errors become ours."""
        try:
            yield
        except CloudError:
            raise
        except sqlite3.OperationalError as err:
            msg = str(err).lower()
            if "locked" in msg or "busy" in msg:
                raise StorageBusyError(f"{what}: database is busy ({err}); retry later") from err
            raise StorageError(f"{what}: {err}") from err
        except sqlite3.DatabaseError as err:
            raise StorageError(f"{what}: {err} (is {self.path} a JoyEdge cloud database?)") from err

    @contextlib.contextmanager
    def _tx(self, what: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection: committed on success, rolled back on any error."""
        with self._translate(what):
            conn = self._open()
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                conn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
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

    @staticmethod
    def _next_seq(conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE seq_counter SET value = value + 1 WHERE id = 1")
        return int(conn.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()[0])

    @staticmethod
    def _clear_tombstone(conn: sqlite3.Connection, stream: int, key: str, site_id: str) -> None:
        """A row written again replaces its tombstone in its own site (other sites keep theirs)."""
        conn.execute(
            "DELETE FROM tombstones WHERE stream = ? AND key = ? AND site_id = ?", (stream, key, site_id)
        )

    def _tombstone(self, conn: sqlite3.Connection, stream: int, key: str, site_id: str) -> int:
        seq = self._next_seq(conn)
        conn.execute(
            "INSERT OR REPLACE INTO tombstones (stream, key, site_id, seq) VALUES (?, ?, ?, ?)",
            (stream, key, site_id, seq),
        )
        return seq

    @staticmethod
    def _member_site(conn: sqlite3.Connection, member_id: str) -> str:
        row = conn.execute("SELECT site_id FROM members WHERE member_id = ?", (member_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"member {member_id!r} does not exist")
        return str(row[0])

    # --- template encryption ----------------------------------------------------------------
    def _cipher(self) -> AESGCM:
        with self._key_lock:
            if self._aead is None:
                self._aead = AESGCM(self._load_or_create_key())
            return self._aead

    def _load_or_create_key(self) -> bytes:
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as err:
            raise StorageError(f"cannot create template key {self.key_path}: {err}") from err
        else:
            key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            return key
        try:
            key = self.key_path.read_bytes()
        except OSError as err:
            raise StorageError(f"cannot read template key {self.key_path}: {err}") from err
        if len(key) != _KEY_BYTES:
            raise StorageError(
                f"template key {self.key_path} is {len(key)} bytes, expected {_KEY_BYTES}: "
                "it is damaged or was being written; restore it from backup"
            )
        return key

    @staticmethod
    def _aad(template_id: str, member_id: str) -> bytes:
        return f"joyedge-template:{template_id}:{member_id}".encode()

    def _seal(self, template_id: str, member_id: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._cipher().encrypt(nonce, plaintext, self._aad(template_id, member_id))

    def _open_sealed(self, template_id: str, member_id: str, blob: bytes) -> bytes:
        try:
            return self._cipher().decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad(template_id, member_id)
            )
        except InvalidTag as err:
            raise StorageError(
                f"template {template_id!r} does not decrypt with {self.key_path}: wrong key or damaged row"
            ) from err

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

    def upsert_store(self, store_id: str, site_id: str, name: str) -> None:
        if not store_id:
            raise InvalidRequestError("store_id must not be empty")
        with self._tx("upsert store") as conn:
            if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (site_id,)).fetchone() is None:
                raise NotFoundError(f"site {site_id!r} does not exist")
            conn.execute(
                "INSERT INTO stores (store_id, site_id, name) VALUES (?, ?, ?)"
                " ON CONFLICT (store_id) DO UPDATE SET site_id = excluded.site_id, name = excluded.name",
                (store_id, site_id, name),
            )

    def list_stores(self, site_id: str) -> list[dict[str, Any]]:
        with self._tx("list stores", write=False) as conn:
            rows = conn.execute(
                "SELECT store_id, site_id, name FROM stores WHERE site_id = ? ORDER BY store_id",
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
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO members (member_id, site_id, name, tier, points, tier_keep_points,"
                " phone_hash, phone_last4, gender, birthday, updated_at_ms, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (member_id, site_id, name, tier, int(points), int(tier_keep_points), hashed, last4,
                 gender, birthday, updated_at_ms if updated_at_ms is not None else now_ms(), seq),
            )
            self._clear_tombstone(conn, STREAM_MEMBERS, member_id, site_id)
            if old is not None and old["site_id"] != site_id:
                # The member left a site: that site's devices must drop it.
                self._tombstone(conn, STREAM_MEMBERS, member_id, old["site_id"])
                seq = self._bump_member_children(conn, member_id, old["site_id"], site_id) or seq
        return seq

    def _bump_member_children(
        self, conn: sqlite3.Connection, member_id: str, old_site: str, new_site: str
    ) -> int:
        """After a site move: tombstone children in the old site and re-serve them in the new one."""
        seq = 0
        for stream in (STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS):
            table, key = _STREAM_TABLES[stream]
            for (k,) in conn.execute(f"SELECT {key} FROM {table} WHERE member_id = ?", (member_id,)).fetchall():
                self._tombstone(conn, stream, k, old_site)
                self._clear_tombstone(conn, stream, k, new_site)
                seq = self._next_seq(conn)
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
            site = self._member_site(conn, member_id)
            for stream in (STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS):
                table, key = _STREAM_TABLES[stream]
                for (k,) in conn.execute(
                    f"SELECT {key} FROM {table} WHERE member_id = ? ORDER BY {key}", (member_id,)
                ).fetchall():
                    self._tombstone(conn, stream, k, site)
                conn.execute(f"DELETE FROM {table} WHERE member_id = ?", (member_id,))
            conn.execute(
                "UPDATE consents SET withdrawn_at_ms = ? WHERE member_id = ? AND withdrawn_at_ms IS NULL",
                (now_ms(), member_id),
            )
            conn.execute("DELETE FROM members WHERE member_id = ?", (member_id,))
            return self._tombstone(conn, STREAM_MEMBERS, member_id, site)

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
            site = self._member_site(conn, member_id)
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO tags (tag_id, member_id, kind, value, score, computed_at_ms,"
                " valid_until_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tag_id, member_id, kind, value, float(score),
                 computed_at_ms if computed_at_ms is not None else now_ms(), int(valid_until_ms), seq),
            )
            self._clear_tombstone(conn, STREAM_TAGS, tag_id, site)
        return seq

    def _delete_child(self, stream: int, key_value: str) -> int:
        table, key = _STREAM_TABLES[stream]
        with self._tx(f"delete from {table}") as conn:
            row = conn.execute(
                f"SELECT member_id FROM {table} WHERE {key} = ?", (key_value,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"{key} {key_value!r} does not exist")
            site = self._member_site(conn, row[0])
            conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (key_value,))
            return self._tombstone(conn, stream, key_value, site)

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
            self._member_site(conn, member_id)
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
        data = _vector_bytes(vector)
        tid = template_id or f"tpl-{uuid.uuid4()}"
        sealed = self._seal(tid, member_id, data)
        with self._tx("add template") as conn:
            site = self._member_site(conn, member_id)
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
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO templates (template_id, member_id, model, vector, consent_id,"
                " created_at_ms, weight, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tid, member_id, model, sealed, consent_id,
                 created_at_ms if created_at_ms is not None else now_ms(), float(weight), seq),
            )
            self._clear_tombstone(conn, STREAM_TEMPLATES, tid, site)
        return tid

    def delete_template(self, template_id: str) -> int:
        return self._delete_child(STREAM_TEMPLATES, template_id)

    def withdraw_consent(self, member_id: str) -> int:
        with self._tx("withdraw consent") as conn:
            site = self._member_site(conn, member_id)
            conn.execute(
                "UPDATE consents SET withdrawn_at_ms = ? WHERE member_id = ? AND withdrawn_at_ms IS NULL",
                (now_ms(), member_id),
            )
            keys = [k for (k,) in conn.execute(
                "SELECT template_id FROM templates WHERE member_id = ? ORDER BY template_id", (member_id,)
            ).fetchall()]
            for k in keys:
                self._tombstone(conn, STREAM_TEMPLATES, k, site)
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
    ) -> int:
        if not coupon_id:
            raise InvalidRequestError("coupon_id must not be empty")
        if kind not in crm_pb2.CouponKind.values() or kind == crm_pb2.COUPON_KIND_UNSPECIFIED:
            raise InvalidRequestError(f"unknown coupon kind {kind!r}")
        if valid_until_ms < valid_from_ms:
            raise InvalidRequestError("coupon valid_until_ms is before valid_from_ms")
        with self._tx("upsert coupon") as conn:
            site = self._member_site(conn, member_id)
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO coupons (coupon_id, member_id, title, kind, value_cents,"
                " threshold_cents, store_ids, valid_from_ms, valid_until_ms, usage_hint, status, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (coupon_id, member_id, title, int(kind), int(value_cents), int(threshold_cents),
                 json.dumps(list(store_ids)), int(valid_from_ms), int(valid_until_ms), usage_hint,
                 int(status), seq),
            )
            self._clear_tombstone(conn, STREAM_COUPONS, coupon_id, site)
        return seq

    def delete_coupon(self, coupon_id: str) -> int:
        return self._delete_child(STREAM_COUPONS, coupon_id)

    # --- replication ------------------------------------------------------------------------
    def changes(
        self, stream: int, site_id: str, after_seq: int, limit: int
    ) -> tuple[list[Change], bool]:
        if stream not in _STREAM_TABLES:
            raise InvalidRequestError(f"unknown stream {stream!r}")
        if limit <= 0:
            raise InvalidRequestError(f"limit must be positive, got {limit}")
        table, key = _STREAM_TABLES[stream]
        if stream == STREAM_MEMBERS:
            rows_sql = (
                "SELECT * FROM members WHERE site_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            )
        else:
            rows_sql = (
                f"SELECT x.* FROM {table} x JOIN members m ON m.member_id = x.member_id"
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

    def _row(self, stream: int, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        if stream == STREAM_TEMPLATES:
            out["vector"] = self._open_sealed(out["template_id"], out["member_id"], out["vector"])
        elif stream == STREAM_COUPONS:
            out["store_ids"] = json.loads(out["store_ids"])
        return out

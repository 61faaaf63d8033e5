"""SQLite plumbing under `SqliteStorage`: connections, transactions, errors, and the change log.

Connections and transactions
    Every call opens its own short-lived connection (WAL, busy timeout) and runs one transaction
    on it: committed on success, rolled back on any error. `translate_errors` is the one place
    where sqlite3 errors become `StorageBusyError` / `StorageError`.

Migrations
    `migrate` applies the ordered migrations of `cloud_stub.storage.schema` not yet recorded.

Change-log primitives
    `next_seq`, `tombstone`, `clear_tombstone` and `member_site` run inside a write transaction
    and keep the change sequence described in `cloud_stub.storage.schema`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence

from cloud_stub.errors import CloudError, NotFoundError, StorageBusyError, StorageError
from cloud_stub.storage.base import now_ms

#: Milliseconds a connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_MS = 5000


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A new autocommit connection (transactions are explicit) with rows as `sqlite3.Row`."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[tuple[int, str]]) -> None:
    """Apply every migration of `migrations` (ordered (version, script) pairs) not yet recorded in
    `schema_migrations`, each in its own transaction. A prefix of `schema.MIGRATIONS` builds the
    database an earlier release had, which is how the upgrade tests make one."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL)"
    )
    for version, script in migrations:
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


@contextlib.contextmanager
def translate_errors(what: str, path: str | os.PathLike[str]) -> Iterator[None]:
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
        raise StorageError(f"{what}: {err} (is {path} a JoyEdge cloud database?)") from err


@contextlib.contextmanager
def transaction(
    path: str | os.PathLike[str], what: str, *, write: bool = True
) -> Iterator[sqlite3.Connection]:
    """One transaction on a fresh connection: committed on success, rolled back on any error."""
    with translate_errors(what, path):
        conn = connect(path)
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


def next_seq(conn: sqlite3.Connection) -> int:
    """Bump the global change counter and return the new seq."""
    conn.execute("UPDATE seq_counter SET value = value + 1 WHERE id = 1")
    return int(conn.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()[0])


def clear_tombstone(conn: sqlite3.Connection, stream: int, key: str, site_id: str) -> None:
    """A row written again replaces its tombstone in its own site (other sites keep theirs)."""
    conn.execute(
        "DELETE FROM tombstones WHERE stream = ? AND key = ? AND site_id = ?", (stream, key, site_id)
    )


def tombstone(conn: sqlite3.Connection, stream: int, key: str, site_id: str) -> int:
    """Record that `key` of `stream` is gone from `site_id`; returns the tombstone's seq."""
    seq = next_seq(conn)
    conn.execute(
        "INSERT OR REPLACE INTO tombstones (stream, key, site_id, seq) VALUES (?, ?, ?, ?)",
        (stream, key, site_id, seq),
    )
    return seq


def member_site(conn: sqlite3.Connection, member_id: str) -> str:
    """The site of an existing member (NotFoundError when absent)."""
    row = conn.execute("SELECT site_id FROM members WHERE member_id = ?", (member_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"member {member_id!r} does not exist")
    return str(row[0])

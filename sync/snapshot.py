"""Bulk cold sync: apply the cloud's `Sync.Snapshot` pages to the replica, staged, then swapped in at once.

A device whose replica has no cursors (it starts empty), or whose cursors the cloud cannot serve
(`PullResponse.snapshot_required`), takes a snapshot instead of paging through Pull. The cloud reads
the site in one read transaction and streams each table as columnar pages.

Here the pages go into **staging tables** (`snap_members`, … — same columns and indexes as the live
ones), in short write transactions of a few pages each, sized to hold the lock about `CHUNK_HOLD_S`
(templates are sealed with AES-GCM *before* the lock is taken), with a pause of `CHUNK_GAP_S` after
each, so the app's own writes (outbox: visits, payments, "not me", traffic; `Replica._tx` polls the lock
every ~1 ms) get in between instead of waiting for the whole snapshot (9 s for 1.3 M rows when it was
one transaction: past the 5 s busy timeout, i.e. failed writes). When the page
marked `done` has arrived and every check passed, **one** transaction swaps the staging tables in by
renaming (live → `snapold_*`, staging → live), tombstones the old templates for the app's gallery and
writes every stream's cursor (= the snapshot seq): readers see the old replica or the complete snapshot,
never a mix. The old tables are then emptied in chunks and dropped.

Crash safety: every staging transaction is an ordinary commit (synchronous=FULL, as every commit of
the replica; with NORMAL for staging the app's next FULL commit paid the fsync of the daemon's unsynced
pages instead, and its worst wait was no better). A crash or a broken stream before the swap leaves the live tables
untouched (the replica is as before; a cold one has still no cursors, so the next round snapshots
again); staging leftovers are dropped by the next snapshot. Two snapshots at once (a second `joyedge
sync`): the later one takes the staging tables over (`local_counters.snapshot_owner`), the earlier one
notices at its next page and stops with an error, changing nothing live.

The staged templates carry the revision the swap will take (the current one + `STAGED_REV_GAP`), so the
app's incremental gallery reload (`Replica.template_changes`) sees them as one new revision even though
they were written before other revisions (a consent withdrawal during the snapshot) were taken.
"""

from __future__ import annotations

import logging
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from api.v1 import sync_pb2
from sync.errors import ReplicaError
from sync.replica import _COLUMNS, STREAM_NAMES, Replica, _explain

_LOG = logging.getLogger(__name__)

STAGE = "snap_"  # staging tables: snap_members, …
OLD = "snapold_"  # live tables replaced by a swap, dropped right after it
# Pages are buffered while the staging transaction would hold the write lock at most CHUNK_HOLD_S, by
# each table's insert rate learnt from the previous transactions (FIRST_RATE rows/s until then: a small
# first chunk). Fewer, larger transactions cost less — every commit writes the pages it touched to the WAL
# again, and a random index (tags.member_id) touches most of its leaf pages in every chunk — while the
# app's longest wait is about one transaction.
CHUNK_HOLD_S = 0.15
FIRST_RATE = 20_000.0
CHUNK_ROWS_MAX = 25_000  # and never more rows than this in one transaction
CHUNK_GAP_S = 0.002  # after each staged page: a writer polling the lock (Replica.WRITE_POLL_MS) gets in
DROP_CHUNK_ROWS = 20_000  # rows deleted per transaction when an old table is emptied
STAGED_REV_GAP = 1 << 32  # staged templates' revision = counter + this (taken by the swap)

# What the cloud sends per table: the replica's columns, with `vector` where the replica keeps `sealed`
# and without the local template revision.
_WIRE = {t: tuple("vector" if c == "sealed" else c for c in cols if c != "rev") for t, cols in _COLUMNS.items()}
_TABLES = tuple(STREAM_NAMES.values())
_CREATE = re.compile(r'^\s*CREATE\s+TABLE\s+(?:"[^"]+"|\[[^\]]+\]|`[^`]+`|\w+)', re.IGNORECASE)


def _values(col: sync_pb2.Column, rows: int, where: str) -> Any:
    """The one list of a column that holds its `rows` values."""
    for field in (col.text, col.int, col.real, col.blob):
        if len(field) == rows:
            return field
    raise ReplicaError(f"snapshot {where}: a column does not have {rows} values; snapshot refused")


def apply_snapshot(replica: Replica, pages: Iterable[sync_pb2.SnapshotPage]) -> tuple[int, dict[str, int]]:
    """Replace the replica's synced tables with the snapshot in `pages`; returns (seq, rows per stream).

    Refused whole (ReplicaError, nothing live changed) when the stream breaks off before the page marked
    `done`, mixes snapshot seqs, misses a stream, or sends columns that do not fit the replica.
    """
    counts = {name: 0 for name in _TABLES}
    seq: int | None = None
    swapped = False
    try:
        owner, rev = _begin(replica)
        try:
            done = False
            seen: set[str] = set()
            chunk: list[tuple[str, list[tuple]]] = []
            estimate, buffered = 0.0, 0  # seconds the buffered chunk should hold the write lock; its rows
            rate: dict[str, float] = {}  # rows/s per table, learnt from the transactions so far
            for page in pages:
                if done:
                    raise ReplicaError("snapshot sent a page after its last one; snapshot refused")
                table = STREAM_NAMES.get(page.stream)
                if table is None:
                    raise ReplicaError(f"snapshot sent a page for unknown stream {page.stream}; snapshot refused")
                if seq is None:
                    seq = page.snapshot_seq
                elif page.snapshot_seq != seq:
                    raise ReplicaError(f"snapshot mixes seqs {seq} and {page.snapshot_seq}; snapshot refused")
                seen.add(table)
                rows = _page_rows(replica, table, page, rev)  # decoded and sealed outside the write lock
                counts[table] += len(rows)
                done = page.done
                more = len(rows) / rate.get(table, FIRST_RATE)
                if chunk and (estimate + more > CHUNK_HOLD_S or buffered + len(rows) > CHUNK_ROWS_MAX):
                    # This page would make the transaction too long: stage what is buffered first.
                    _stage_and_learn(replica, owner, chunk, estimate, rate)
                    chunk, estimate, buffered = [], 0.0, 0
                if rows:
                    chunk.append((table, rows))
                    estimate, buffered = estimate + more, buffered + len(rows)
                if done:
                    _stage_and_learn(replica, owner, chunk, estimate, rate)
                    chunk, estimate, buffered = [], 0.0, 0
            if not done or seq is None:
                raise ReplicaError("snapshot ended before its last page (connection lost?); nothing applied")
            if seen != set(_TABLES):
                raise ReplicaError(f"snapshot lacks streams {sorted(set(_TABLES) - seen)}; snapshot refused")
            _index(replica, owner)
            _swap(replica, owner, rev, seq)
            swapped = True
        finally:
            if not swapped:
                _abandon(replica, owner)
        _drop_tables(replica, OLD)
    except sqlite3.Error as err:
        raise ReplicaError(f"cannot apply snapshot: {_explain(err, replica.path)}") from err
    return seq, counts


def _stage_and_learn(replica: Replica, owner: int, chunk: list[tuple[str, list[tuple]]], estimate: float,
                     rate: dict[str, float]) -> None:
    """Stage `chunk`; then correct the insert rate of its tables (rows/s on this machine, now: tags with
    their random index are several times slower than members) by how far `estimate` was off."""
    if not chunk:
        return
    held = _stage(replica, owner, chunk)
    # Down at once, up by at most a quarter: one fast transaction on a busy machine must not make the
    # next one long.
    factor = min(1.25, estimate / max(held, 1e-3))
    for table in {t for t, _ in chunk}:
        rate[table] = rate.get(table, FIRST_RATE) * factor


def _stage(replica: Replica, owner: int, chunk: list[tuple[str, list[tuple]]]) -> float:
    """One short staging transaction, then a pause that lets a waiting writer in; seconds it held the lock."""
    t0 = time.perf_counter()
    if chunk:
        with replica._tx() as conn:
            _check_owner(conn, owner)
            for table, rows in chunk:
                conn.executemany(_insert(STAGE + table, table), rows)
    held = time.perf_counter() - t0
    time.sleep(CHUNK_GAP_S)
    return held


def _begin(replica: Replica) -> tuple[int, int]:
    """Drop leftovers, create empty staging tables shaped like the live ones; (owner token, staged rev)."""
    _drop_tables(replica, OLD)
    owner = secrets.randbits(62) + 1
    with replica._tx() as conn:
        for name in _leftovers(conn, STAGE):
            conn.execute(f'DROP TABLE "{name}"')  # an abandoned or taken-over staging (crash): never live
        for table in _TABLES:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
            conn.execute(_CREATE.sub(f'CREATE TABLE "{STAGE}{table}"', sql, count=1))
        conn.execute("INSERT OR REPLACE INTO local_counters (name, value) VALUES ('snapshot_owner', ?)", (owner,))
        # The counter itself moves only at the swap; revisions taken meanwhile stay below this one.
        rev = _template_rev(conn) + STAGED_REV_GAP
    return owner, rev


def _template_rev(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM local_counters WHERE name = 'template_rev'").fetchone()
    return int(row[0]) if row else 0


def _index(replica: Replica, owner: int) -> None:
    """Give the staging tables the live tables' secondary indexes, one transaction per index.

    They are built after the rows are in, not kept up while staging: rows arrive in seq order, which is
    random for an index such as tags(member_id), so every short staging transaction rewrote most of that
    index's pages (cold sync took 2x the raw insert time). A build sorts once; the write lock is held
    for the build of one index (~0.2 s for 1 M tags here), the longest wait the app's writes see.
    """
    with replica._lock:
        conn = replica._conn
        wanted = []
        for table in _TABLES:
            for _seq, index, unique, origin, _partial in conn.execute(f'PRAGMA index_list("{table}")').fetchall():
                if origin != "c":
                    continue  # the primary key's own index comes with the table definition
                cols = [r[2] for r in conn.execute(f'PRAGMA index_info("{index}")')]
                wanted.append((table, index, bool(unique), cols))
    for table, index, unique, cols in wanted:
        name = f"{index.split('__s')[0]}__s{owner:x}"  # index names are global: one per generation
        quoted = ", ".join(f'"{c}"' for c in cols)
        with replica._tx() as conn:
            _check_owner(conn, owner)
            conn.execute(f'CREATE {"UNIQUE " if unique else ""}INDEX IF NOT EXISTS "{name}" '
                         f'ON "{STAGE}{table}" ({quoted})')
        time.sleep(CHUNK_GAP_S)


def _check_owner(conn: sqlite3.Connection, owner: int) -> None:
    row = conn.execute("SELECT value FROM local_counters WHERE name = 'snapshot_owner'").fetchone()
    if row is None or int(row[0]) != owner:
        raise ReplicaError("another snapshot of this replica started (a second `joyedge sync`?); this one stopped, "
                           "nothing applied")


def _swap(replica: Replica, owner: int, rev: int, seq: int) -> None:
    """One durable transaction: staging becomes live, the old tables move aside, cursors = seq."""
    with replica._tx() as conn:
        _check_owner(conn, owner)
        now = _template_rev(conn)
        if now >= rev:  # 2^32 revisions taken during one snapshot: restamp (slow, correct)
            rev = now + 1
            conn.execute(f'UPDATE "{STAGE}templates" SET rev = ?', (rev,))
        # The app's gallery learns of every template it had through tombstones; the ones the snapshot
        # brings back arrive as rows of the same revision (rows win, see Gallery.apply_delta).
        conn.execute("INSERT OR REPLACE INTO template_tombstones (template_id, rev) "
                     "SELECT template_id, ? FROM templates", (rev,))
        # legacy_alter_table: a rename must not rewrite references (views, triggers) to follow the old
        # table to its `snapold_` name; they are to name whatever is live.
        conn.execute("PRAGMA legacy_alter_table=ON")
        try:
            for table in _TABLES:
                conn.execute(f'ALTER TABLE "{table}" RENAME TO "{OLD}{table}"')
                conn.execute(f'ALTER TABLE "{STAGE}{table}" RENAME TO "{table}"')
        finally:
            conn.execute("PRAGMA legacy_alter_table=OFF")
        conn.executemany("INSERT OR REPLACE INTO cursors (stream, seq) VALUES (?, ?)",
                         [(name, seq) for name in _TABLES])
        conn.execute("INSERT OR REPLACE INTO local_counters (name, value) VALUES ('template_rev', ?)", (rev,))
        conn.execute("DELETE FROM local_counters WHERE name = 'snapshot_owner'")


def _abandon(replica: Replica, owner: int) -> None:
    """A failed snapshot drops its staging tables, unless another snapshot has taken them over."""
    try:
        with replica._tx() as conn:
            row = conn.execute("SELECT value FROM local_counters WHERE name = 'snapshot_owner'").fetchone()
            if row is None or int(row[0]) != owner:
                return
            conn.execute("DELETE FROM local_counters WHERE name = 'snapshot_owner'")
        _drop_tables(replica, STAGE)
    except (sqlite3.Error, ReplicaError) as err:  # the snapshot's own error is the one to report
        _LOG.warning("sync: staging tables of a failed snapshot left for the next one: %s", err)


def _leftovers(conn: sqlite3.Connection, prefix: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            if r[0].startswith(prefix)]


def _drop_tables(replica: Replica, prefix: str) -> None:
    """Empty the tables named `prefix`* in chunks (each a short transaction), then drop them."""
    with replica._lock:
        names = _leftovers(replica._conn, prefix)
    for name in names:
        while True:
            with replica._tx() as conn:
                if not _leftovers(conn, name):
                    break
                gone = conn.execute(f'DELETE FROM "{name}" WHERE rowid IN (SELECT rowid FROM "{name}" LIMIT ?)',
                                    (DROP_CHUNK_ROWS,)).rowcount
                if gone == 0:
                    conn.execute(f'DROP TABLE "{name}"')
                    break
            time.sleep(CHUNK_GAP_S)


def _insert(target: str, table: str) -> str:
    cols = _COLUMNS[table]
    return f'INSERT INTO "{target}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'


def _page_rows(replica: Replica, table: str, page: sync_pb2.SnapshotPage, rev: int) -> list[tuple]:
    """A page's rows as tuples in the replica's column order (templates sealed)."""
    n = page.rows
    if n < 0:
        raise ReplicaError(f"snapshot {table} page has {n} rows; snapshot refused")
    if n == 0:
        return []
    names = list(page.column_names)
    if sorted(names) != sorted(_WIRE[table]) or len(page.columns) != len(names):
        raise ReplicaError(f"snapshot {table} page has columns {names}, expected {list(_WIRE[table])}; "
                           "snapshot refused")
    by_name = {name: _values(col, n, table) for name, col in zip(names, page.columns, strict=True)}
    if table == "templates":
        ids = list(by_name["template_id"])
        by_name["sealed"] = replica.cipher.encrypt_many(ids, by_name.pop("vector"))
        by_name["weight"] = [w or 1.0 for w in by_name["weight"]]
        by_name["rev"] = [rev] * n
    return list(zip(*(by_name[c] for c in _COLUMNS[table]), strict=True))

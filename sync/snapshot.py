"""Bulk cold sync: apply the cloud's `Sync.Snapshot` pages to the replica in one transaction.

A device whose replica has no cursors (it starts empty), or whose cursors the cloud cannot serve
(`PullResponse.snapshot_required`), takes a snapshot instead of paging through Pull. The cloud reads
the site in one read transaction and streams each table as columnar pages; here every page becomes
one `executemany` (templates sealed per row with AES-GCM first — the sealing stays), all inside
**one** write transaction that also replaces the old rows and stores every stream's cursor (= the
snapshot's seq) with the last page. A crash or a broken stream mid-snapshot rolls back whole: the
replica is either as before or the complete snapshot, never a half-applied copy that looks complete.
Pull then continues from the snapshot seq, so changes and deletions made during the snapshot follow.

The trade-off: the device app's own writes (outbox) wait for that transaction (its busy timeout);
a snapshot runs on a device that is empty or hopelessly behind, where the app has little to do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from api.v1 import sync_pb2
from sync.errors import ReplicaError
from sync.replica import _COLUMNS, STREAM_NAMES, Replica, _explain

# What the cloud sends per table: the replica's columns, with `vector` where the replica keeps `sealed`
# and without the local template revision.
_WIRE = {t: tuple("vector" if c == "sealed" else c for c in cols if c != "rev") for t, cols in _COLUMNS.items()}
_INSERT = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})" for t, c in _COLUMNS.items()}


def _values(col: sync_pb2.Column, rows: int, where: str) -> Any:
    """The one list of a column that holds its `rows` values."""
    for field in (col.text, col.int, col.real, col.blob):
        if len(field) == rows:
            return field
    raise ReplicaError(f"snapshot {where}: a column does not have {rows} values; snapshot refused")


def apply_snapshot(replica: Replica, pages: Iterable[sync_pb2.SnapshotPage]) -> tuple[int, dict[str, int]]:
    """Replace the replica's synced tables with the snapshot in `pages`; returns (seq, rows per stream).

    Refused whole (ReplicaError, nothing changed) when the stream breaks off before the page marked
    `done`, mixes snapshot seqs, misses a stream, or sends columns that do not fit the replica.
    """
    counts = {name: 0 for name in STREAM_NAMES.values()}
    seq: int | None = None
    try:
        with replica._tx() as conn:
            rev = replica._next_rev(conn)
            # The app's gallery learns of every template it had through tombstones; the ones the
            # snapshot brings back arrive as rows of the same revision (rows win, see Gallery.apply_delta).
            conn.execute("INSERT OR REPLACE INTO template_tombstones (template_id, rev) "
                         "SELECT template_id, ? FROM templates", (rev,))
            for table in STREAM_NAMES.values():
                conn.execute(f"DELETE FROM {table}")
            done = False
            seen: set[str] = set()
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
                counts[table] += _apply_page(conn, replica, table, page, rev)
                done = page.done
            if not done or seq is None:
                raise ReplicaError("snapshot ended before its last page (connection lost?); nothing applied")
            if seen != set(STREAM_NAMES.values()):
                raise ReplicaError(f"snapshot lacks streams {sorted(set(STREAM_NAMES.values()) - seen)}; "
                                   "snapshot refused")
            conn.executemany("INSERT OR REPLACE INTO cursors (stream, seq) VALUES (?, ?)",
                             [(name, seq) for name in STREAM_NAMES.values()])
    except sqlite3.Error as err:
        raise ReplicaError(f"cannot apply snapshot: {_explain(err, replica.path)}") from err
    return seq, counts


def _apply_page(conn: sqlite3.Connection, replica: Replica, table: str, page: sync_pb2.SnapshotPage,
                rev: int) -> int:
    n = page.rows
    if n < 0:
        raise ReplicaError(f"snapshot {table} page has {n} rows; snapshot refused")
    if n == 0:
        return 0
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
    conn.executemany(_INSERT[table], zip(*(by_name[c] for c in _COLUMNS[table]), strict=True))
    return n

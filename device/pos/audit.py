"""The π-POS audit log: every decision of a checkout, hash-chained so that tampering shows.

Each entry stores ``prev`` (the hash of the entry before it) and ``hash`` = SHA-256 over ``prev`` and
the canonical JSON of (seq, at_ms, kind, data). Changing any field of an entry breaks its own hash;
deleting or reordering entries breaks the next entry's ``prev``; the sequence numbers are contiguous,
so a gap shows too. Truncating the *tail* leaves a valid shorter chain, so every receipt carries the
first characters of the hash of its sale's decision (an anchor outside the device): ``verify`` with
those anchors detects a cut tail as well.

The log lives in the device replica (table ``pos_audit``, device-local: the sync daemon never writes
it) so that a sale's audit entries commit in the same transaction as the sale and its outbox events.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
ANCHOR_CHARS = 16  # printed on the receipt: 64 bits are plenty against a forged tail

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pos_audit (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL, data TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL)"
)


def _digest(prev: str, seq: int, at_ms: int, kind: str, data: str) -> str:
    body = json.dumps([seq, at_ms, kind, data], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev + "|" + body).encode("utf-8")).hexdigest()


def canonical(data: dict[str, Any]) -> str:
    """The stored form of an entry's data (sorted keys, no whitespace), the text that is hashed."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of `AuditLog.verify`."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """Append-only, hash-chained decisions in the replica's SQLite file."""

    def __init__(self, replica: Any) -> None:
        self.replica = replica
        with replica.transaction() as conn:
            conn.execute(SCHEMA)

    def append(self, conn: sqlite3.Connection, kind: str, data: dict[str, Any], at_ms: int | None = None) -> str:
        """Inside an open replica transaction: append one entry; returns its hash."""
        at = int(time.time() * 1000) if at_ms is None else at_ms
        row = conn.execute("SELECT seq, hash FROM pos_audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
        text = canonical(data)
        digest = _digest(prev, seq, at, kind, text)
        conn.execute("INSERT INTO pos_audit (seq, at_ms, kind, data, prev, hash) VALUES (?, ?, ?, ?, ?, ?)",
                     (seq, at, kind, text, prev, digest))
        return digest

    def record(self, kind: str, data: dict[str, Any]) -> str:
        """Append one entry in its own transaction; returns its hash."""
        with self.replica.transaction() as conn:
            return self.append(conn, kind, data)

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Entries in order, data decoded (optionally only one kind)."""
        with self.replica._lock:
            rows = self.replica._conn.execute("SELECT * FROM pos_audit ORDER BY seq").fetchall()
        out = [dict(r) | {"data": json.loads(r["data"])} for r in rows]
        return [e for e in out if kind is None or e["kind"] == kind]

    def verify(self, anchors: Iterable[str] = ()) -> AuditCheck:
        """Walk the chain; ``anchors`` are hash prefixes printed on receipts that must still be in it."""
        with self.replica._lock:
            rows = self.replica._conn.execute(
                "SELECT seq, at_ms, kind, data, prev, hash FROM pos_audit ORDER BY seq").fetchall()
        prev, expected_seq = GENESIS, 1
        hashes: list[str] = []
        for seq, at_ms, kind, data, stored_prev, stored_hash in rows:
            if seq != expected_seq:
                return AuditCheck(False, len(rows), expected_seq, f"entry {expected_seq} is missing")
            if stored_prev != prev:
                return AuditCheck(False, len(rows), seq, f"entry {seq} does not follow entry {seq - 1}")
            if _digest(prev, seq, at_ms, kind, data) != stored_hash:
                return AuditCheck(False, len(rows), seq, f"entry {seq} was changed after it was written")
            prev, expected_seq = stored_hash, seq + 1
            hashes.append(stored_hash)
        for anchor in anchors:
            if not any(h.startswith(anchor) for h in hashes):
                return AuditCheck(False, len(rows), None, f"receipt anchor {anchor} is not in the log (tail cut?)")
        return AuditCheck(True, len(rows))

"""π-POS device-local tables in the replica file: sales and the JOY-CRED offline limits seen.

They live beside the outbox so that a sale, its audit entries and its outbox events (offline payment,
points, coupon redemption) commit in one transaction. The sync daemon never writes these tables; they
are created here (``CREATE TABLE IF NOT EXISTS``) rather than as replica migrations because they belong
to the π-POS app, not to the replica of cloud data.

Offline limits (``pos_credit``): the cloud's JOY-CRED report is fetched over ``Credit.GetCredit`` on
every online face payment and by the app's background refresh of the gallery's members, and kept
here with the time it was fetched. Offline, a member may pay up to that limit minus the offline
payments of theirs the cloud has not acknowledged yet (still in the outbox or quarantined).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS pos_sales (sale_id TEXT PRIMARY KEY, created_at_ms INTEGER NOT NULL,"
    " items TEXT NOT NULL, amount_cents INTEGER NOT NULL, discount_cents INTEGER NOT NULL,"
    " paid_cents INTEGER NOT NULL, method TEXT NOT NULL, mode TEXT NOT NULL, member_id TEXT,"
    " payment_id TEXT, payment_event_id TEXT, coupon_id TEXT, points INTEGER NOT NULL DEFAULT 0,"
    " idempotency_key TEXT UNIQUE, status TEXT NOT NULL, refunded_cents INTEGER NOT NULL DEFAULT 0,"
    " anchor TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS pos_credit (member_id TEXT PRIMARY KEY, grade TEXT NOT NULL,"
    " offline_limit_cents INTEGER NOT NULL, fetched_at_ms INTEGER NOT NULL)",
    # Refunds, several per sale (device.pos.refund): the refund id is ``ref-<sale_id>.<seq>``, the row is
    # written as "pending" before any cloud call and "done" with the local refund, so a retry or a double
    # tap reuses the id. amount_cents: money given back; lines: JSON list of returned line numbers;
    # clawback_cents: coupon discount kept back; coupon: "" | kept | restored | expired; path: online |
    # outbox | cash ("" while pending); event_id: the queued refund event (outbox path).
    "CREATE TABLE IF NOT EXISTS pos_refunds (refund_id TEXT PRIMARY KEY, sale_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " amount_cents INTEGER NOT NULL, lines TEXT NOT NULL DEFAULT '[]', clawback_cents INTEGER NOT NULL DEFAULT 0,"
    " points INTEGER NOT NULL DEFAULT 0, coupon TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT 'done',"
    " path TEXT NOT NULL, event_id TEXT, created_at_ms INTEGER NOT NULL DEFAULT 0, refunded_at_ms INTEGER,"
    " UNIQUE (sale_id, seq))",
    # Corrections the cloud sent back about this device's sales (device.pos.reconcile), one per compensation.
    "CREATE TABLE IF NOT EXISTS pos_reconciliation (compensation_id TEXT PRIMARY KEY, sale_id TEXT,"
    " kind TEXT NOT NULL, amount_cents INTEGER NOT NULL, coupon_id TEXT NOT NULL, message TEXT NOT NULL,"
    " state TEXT NOT NULL, created_at_ms INTEGER NOT NULL, resolved_at_ms INTEGER, resolved_by TEXT)",
)
# An offline limit older than this is not trusted (the member's credit may have dropped since).
CREDIT_MAX_AGE_S = 7 * 24 * 3600.0


def ensure_schema(replica: Any) -> None:
    """Create the π-POS tables if they are not there yet (and bring older ones up to date)."""
    with replica.transaction() as conn:
        old = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'pos_refunds'").fetchone()
        if old is not None and "seq INTEGER" not in old[0]:
            # One full refund per sale (before partial refunds): each becomes refund 1 of its sale; its id
            # stays the one the cloud already knows.
            conn.execute("ALTER TABLE pos_refunds RENAME TO pos_refunds_v1")
        for statement in SCHEMA:
            conn.execute(statement)
        if old is not None and "seq INTEGER" not in old[0]:
            conn.execute("INSERT INTO pos_refunds (refund_id, sale_id, seq, amount_cents, path, event_id,"
                         " created_at_ms, refunded_at_ms) SELECT refund_id, sale_id, 1, amount_cents, path, event_id,"
                         " refunded_at_ms, refunded_at_ms FROM pos_refunds_v1")
            conn.execute("DROP TABLE pos_refunds_v1")
        columns = {r[1] for r in conn.execute("PRAGMA table_info(pos_sales)")}
        if "coupon_threshold_cents" not in columns:  # the coupon's threshold, for the refund rule
            conn.execute("ALTER TABLE pos_sales ADD COLUMN coupon_threshold_cents INTEGER NOT NULL DEFAULT 0")


def insert_sale(conn: sqlite3.Connection, sale: dict[str, Any]) -> None:
    """Inside a transaction: store one finished sale."""
    row = dict(sale)
    row["items"] = json.dumps(row.get("items", []), ensure_ascii=False)
    cols = ", ".join(row)
    conn.execute(f"INSERT INTO pos_sales ({cols}) VALUES ({', '.join(':' + k for k in row)})", row)


def _decode(row: sqlite3.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    out["items"] = json.loads(out["items"])
    return out


def sale(replica: Any, sale_id: str) -> dict[str, Any] | None:
    """One sale by id, or None."""
    with replica._lock:
        return _decode(replica._conn.execute("SELECT * FROM pos_sales WHERE sale_id = ?", (sale_id,)).fetchone())


def refunds(replica: Any, sale_id: str) -> list[dict[str, Any]]:
    """The refunds of a sale (pending and done), in order."""
    with replica._lock:
        rows = replica._conn.execute("SELECT * FROM pos_refunds WHERE sale_id = ? ORDER BY seq", (sale_id,)).fetchall()
    return [dict(r) | {"lines": json.loads(r["lines"])} for r in rows]


def sale_by_key(replica: Any, key: str) -> dict[str, Any] | None:
    """The sale paid under an idempotency key, or None."""
    with replica._lock:
        return _decode(replica._conn.execute("SELECT * FROM pos_sales WHERE idempotency_key = ?",
                                             (key,)).fetchone())


def sales(replica: Any) -> list[dict[str, Any]]:
    """Every sale, oldest first."""
    with replica._lock:
        rows = replica._conn.execute("SELECT * FROM pos_sales ORDER BY created_at_ms, sale_id").fetchall()
    return [d for d in (_decode(r) for r in rows) if d is not None]


def put_credit(replica: Any, member_id: str, grade: str, limit_cents: int, now_ms: int | None = None) -> None:
    """Remember a member's JOY-CRED grade and offline limit as the cloud reported them."""
    at = int(time.time() * 1000) if now_ms is None else now_ms
    with replica.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO pos_credit VALUES (?, ?, ?, ?)", (member_id, grade, int(limit_cents), at))


def credit(replica: Any, member_id: str, now_ms: int | None = None) -> dict[str, Any] | None:
    """The member's last known offline limit, or None when unknown or older than CREDIT_MAX_AGE_S."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    with replica._lock:
        row = replica._conn.execute("SELECT * FROM pos_credit WHERE member_id = ?", (member_id,)).fetchone()
    if row is None or now - int(row["fetched_at_ms"]) > CREDIT_MAX_AGE_S * 1000:
        return None
    return dict(row)


def credit_age(replica: Any) -> dict[str, int]:
    """member_id → fetched_at_ms of every cached limit (the refresher picks the oldest)."""
    with replica._lock:
        return {r[0]: int(r[1]) for r in replica._conn.execute("SELECT member_id, fetched_at_ms FROM pos_credit")}


def offline_outstanding(conn: sqlite3.Connection, member_id: str) -> int:
    """Cents of this member's offline payments the cloud has not acknowledged (outbox or quarantine)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(paid_cents - refunded_cents), 0) FROM pos_sales WHERE member_id = ? AND mode = 'offline'"
        " AND (payment_event_id IN (SELECT event_id FROM outbox) OR payment_event_id IN (SELECT event_id FROM quarantine))",
        (member_id,)).fetchone()
    return int(row[0])


def face_members(replica: Any) -> list[str]:
    """Members with a face template on this device (the ones who can pay by face here)."""
    with replica._lock:
        return [r[0] for r in replica._conn.execute("SELECT DISTINCT member_id FROM templates ORDER BY member_id")]

"""Reconciliation items: the cloud's corrections about this device's sales, flagged for the cashier.

A coupon is single-use, but two counters (or a counter and the member's mini-program) can each use it
while offline. The cloud decides: the first redemption it records stands; a later one is kept as a
CONFLICT and answered with a compensation (`coupon_double_redemption`, the discount given without
cover; `coupon_invalid` when the coupon could not be used at all). The sync daemon stores it in the
replica's `compensations` table when it settles the push; here the app turns each new one into a
`pos_reconciliation` item tied to the sale that used the coupon (through `local_redemptions`, which
holds the redemption's outbox event id — the compensation's cause), with an audit entry, in one
transaction. The cashier sees "券已在其他终端使用，差额 ¥30.00 待补收" with the sale's number until
they mark the difference collected (`resolve`, audited; the compensation is then marked seen).

The cloud's operator sees the same item (`joyedge-cloud reconcile list`), so the two closes travel:
- counter → cloud: `resolve` enqueues a `ReconciliationEvent` in the same transaction as the local
  close and its audit entry; the cloud closes the item for the operator with the counter's note (a
  close the operator made first stays; only this device may close its own compensation);
- cloud → counter: the operator's close comes back with the next Pull (`sync/reconcile_closures.py`
  stores it as a compensation of kind `reconcile_closed`); `absorb` closes the open item as "closed
  by operator: <note>" (audited). An item already settled here keeps its state.

Nothing is lost or counted twice: an item per compensation id (a re-sync brings the same
compensation back and changes nothing); the sale itself stays as it was booked (the money taken is
what was taken), the item is the flag; a sale refunded in full has nothing left to collect, so its
item is closed as "refunded" (here, or by the refund when it comes later).
"""

from __future__ import annotations

import time
from typing import Any

from api.v1 import sync_pb2
from device.pos.audit import AuditLog
from device.pos.payment import PaymentError
from device.pos.receipt import yuan
from sync.outbox import enqueue
from sync.reconcile_closures import KIND as CLOSED_KIND

TEXTS = {
    "coupon_double_redemption": ("券已在其他终端使用，差额 ¥{amount} 待补收",
                                 "coupon already used at another counter: collect ¥{amount}"),
    "coupon_invalid": ("券不可用，差额 ¥{amount} 待补收", "coupon was not valid: collect ¥{amount}"),
}
OTHER = ("云端更正，差额 ¥{amount} 待处理", "cloud correction: ¥{amount} to settle")


class ReconcileError(PaymentError):
    """A reconciliation action that does not apply (unknown or already resolved item)."""


# The sale a compensation (its cause event, its coupon) is about: the one whose redemption event caused
# it; when a refund gave the coupon back (its local_redemptions row is gone), the last sale here with it.
_SALE_OF = ("SELECT COALESCE((SELECT s.sale_id FROM local_redemptions lr JOIN pos_sales s"
            " ON s.coupon_id = lr.coupon_id WHERE lr.event_id = :cause),"
            " (SELECT s.sale_id FROM pos_sales s WHERE s.coupon_id = :coupon AND :coupon != ''"
            " ORDER BY s.created_at_ms DESC LIMIT 1)) AS sale_id")


def _new(conn: Any) -> list[Any]:
    return conn.execute(
        "SELECT c.*, COALESCE((SELECT s.sale_id FROM local_redemptions lr JOIN pos_sales s"
        "             ON s.coupon_id = lr.coupon_id WHERE lr.event_id = c.cause_event_id),"
        "          (SELECT s.sale_id FROM pos_sales s WHERE s.coupon_id = c.coupon_id AND c.coupon_id != ''"
        "             ORDER BY s.created_at_ms DESC LIMIT 1)) AS sale_id"
        " FROM compensations c WHERE c.compensation_id NOT IN (SELECT compensation_id FROM pos_reconciliation)"
        " AND c.kind != ? ORDER BY c.received_at_ms, c.compensation_id", (CLOSED_KIND,)).fetchall()


def _closed(conn: Any) -> list[Any]:
    """The cloud's closures not acted on here yet, with the item each closes (None when there is none)."""
    return conn.execute(
        "SELECT k.compensation_id AS closure_id, k.cause_event_id AS compensation_id, k.message AS note,"
        " r.state, r.sale_id, r.amount_cents FROM compensations k"
        " LEFT JOIN pos_reconciliation r ON r.compensation_id = k.cause_event_id"
        " WHERE k.kind = ? AND k.seen = 0 ORDER BY k.received_at_ms, k.compensation_id", (CLOSED_KIND,)).fetchall()


def absorb(replica: Any, audit: AuditLog) -> list[dict[str, Any]]:
    """Turn compensations not seen here yet into reconciliation items and close the items the cloud's
    operator closed (one transaction, audited); returns the new items. Cheap when there is nothing
    new (reads, no write lock)."""
    with replica._lock:
        if not _new(replica._conn) and not _closed(replica._conn):
            return []
    now = int(time.time() * 1000)
    created: list[dict[str, Any]] = []
    with replica.transaction() as conn:
        for c in _new(conn):
            sale = conn.execute("SELECT status FROM pos_sales WHERE sale_id = ?", (c["sale_id"],)).fetchone()
            state = "refunded" if sale is not None and sale[0] == "refunded" else "open"
            item = {"compensation_id": c["compensation_id"], "sale_id": c["sale_id"], "kind": c["kind"],
                    "amount_cents": int(c["amount_cents"]), "coupon_id": c["coupon_id"], "message": c["message"],
                    "state": state, "created_at_ms": now, "resolved_at_ms": now if state != "open" else None,
                    "resolved_by": "refund" if state != "open" else None}
            conn.execute("INSERT INTO pos_reconciliation VALUES (:compensation_id, :sale_id, :kind, :amount_cents,"
                         " :coupon_id, :message, :state, :created_at_ms, :resolved_at_ms, :resolved_by)", item)
            if state == "refunded":  # the sale was refunded in full before the cloud's word came: say so
                close_for_refund(conn, replica.cipher, item["compensation_id"], item["sale_id"] or "", "refund", now)
            audit.append(conn, "reconcile", {"compensation_id": item["compensation_id"], "sale_id": item["sale_id"],
                                             "kind": item["kind"], "coupon_id": item["coupon_id"],
                                             "amount_cents": item["amount_cents"], "state": state,
                                             "cloud": item["message"]}, now)
            created.append(item)
        for k in _closed(conn):
            _close_by_operator(conn, audit, k, now)
    return created


def _close_by_operator(conn: Any, audit: AuditLog, k: Any, now: int) -> None:
    """The operator closed this item in the cloud: close it here unless it was settled here already
    (the first close stands); the closure and its compensation are then marked seen (never asked again)."""
    by = f"closed by operator: {k['note']}"
    if k["state"] == "open":
        conn.execute("UPDATE pos_reconciliation SET state = 'closed', resolved_at_ms = ?, resolved_by = ?"
                     " WHERE compensation_id = ? AND state = 'open'", (now, by, k["compensation_id"]))
    audit.append(conn, "reconcile", {"compensation_id": k["compensation_id"], "sale_id": k["sale_id"],
                                     "state": "closed" if k["state"] == "open" else k["state"], "by": "operator",
                                     "cloud": by, "amount_cents": int(k["amount_cents"] or 0)}, now)
    conn.execute("UPDATE compensations SET seen = 1 WHERE compensation_id IN (?, ?)",
                 (k["closure_id"], k["compensation_id"]))


def sale_of(replica: Any, compensation: dict[str, Any]) -> str | None:
    """The sale of this device a compensation is about, or None (not a π-POS, or not one of its sales)."""
    with replica._lock:
        conn = replica._conn
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'pos_sales'").fetchone() is None:
            return None  # a mirror: no sales here
        row = conn.execute("SELECT sale_id FROM (" + _SALE_OF + ")", {
            "cause": compensation.get("cause_event_id") or "", "coupon": compensation.get("coupon_id") or ""}).fetchone()
    return row[0] if row and row[0] else None


def items(replica: Any, open_only: bool = True) -> list[dict[str, Any]]:
    """Reconciliation items, oldest first (only the open ones by default)."""
    where = " WHERE state = 'open'" if open_only else ""
    with replica._lock:
        rows = replica._conn.execute(f"SELECT * FROM pos_reconciliation{where} ORDER BY created_at_ms,"
                                     " compensation_id").fetchall()
    return [dict(r) for r in rows]


def text(item: dict[str, Any]) -> str:
    """What the cashier reads: "中文 · English" (the page picks a side)."""
    zh, en = TEXTS.get(item["kind"], OTHER)
    amount = yuan(int(item["amount_cents"]))
    return f"{zh.format(amount=amount)} · {en.format(amount=amount)}"


def close_for_refund(conn: Any, cipher: Any, compensation_id: str, sale_id: str, by: str, now: int) -> str:
    """Inside the refund's transaction: the whole sale was refunded, so its open item is closed as
    "refunded" here and the cloud is told (outbox); returns the event id. The refund's audit entry
    counts it (``reconciliation_closed``)."""
    conn.execute("UPDATE pos_reconciliation SET state = 'refunded', resolved_at_ms = ?, resolved_by = ?"
                 " WHERE compensation_id = ? AND state = 'open'", (now, by, compensation_id))
    conn.execute("UPDATE compensations SET seen = 1 WHERE compensation_id = ?", (compensation_id,))
    return enqueue(conn, cipher, "reconciliation", sync_pb2.ReconciliationEvent(
        compensation_id=compensation_id, sale_id=sale_id, state="refunded", resolved_by=by, resolved_at_ms=now),
        now_ms=now)


def resolve(replica: Any, audit: AuditLog, compensation_id: str, by: str = "cashier") -> dict[str, Any]:
    """The cashier collected the difference: close the item (audited), mark the compensation seen and
    tell the cloud (a `ReconciliationEvent` in the outbox) — all in one transaction."""
    now = int(time.time() * 1000)
    with replica.transaction() as conn:
        row = conn.execute("SELECT * FROM pos_reconciliation WHERE compensation_id = ?", (compensation_id,)).fetchone()
        if row is None:
            raise ReconcileError("没有这条待处理差额 · no such reconciliation item")
        if row["state"] != "open":
            raise ReconcileError(f"此差额已处理（{row['state']}） · this item was already settled ({row['state']})")
        conn.execute("UPDATE pos_reconciliation SET state = 'collected', resolved_at_ms = ?, resolved_by = ?"
                     " WHERE compensation_id = ?", (now, by, compensation_id))
        conn.execute("UPDATE compensations SET seen = 1 WHERE compensation_id = ?", (compensation_id,))
        event_id = enqueue(conn, replica.cipher, "reconciliation", sync_pb2.ReconciliationEvent(
            compensation_id=compensation_id, sale_id=row["sale_id"] or "", state="collected", resolved_by=by,
            resolved_at_ms=now), now_ms=now)
        audit.append(conn, "reconcile", {"compensation_id": compensation_id, "sale_id": row["sale_id"],
                                         "state": "collected", "amount_cents": int(row["amount_cents"]), "by": by,
                                         "event_id": event_id}, now)
    return dict(row) | {"state": "collected", "resolved_at_ms": now, "resolved_by": by}

"""Giving a coupon back to the member when the sale that used it is refunded ("unredeem").

The rule (the π-POS decides when, the cloud books it; ARCHITECTURE, π-POS):
    - a refund of the whole sale gives the coupon back;
    - a partial refund keeps it used, unless what the shopper keeps falls below the coupon's threshold:
      then the device takes the discount on the kept goods back from the refund, and the coupon goes
      back to the member (they paid full price for what they kept);
    - only a coupon still valid goes back (an expired one stays used), and only a redemption the cloud
      accepted (a double redemption's coupon stays with the redemption that won).

Exactly once: `coupon_unredemptions` holds one row per redemption (its primary key); the refund that
asks for it is its ``unredeem_id``. A second ask — a retried refund, a queued refund after an online
one, a later partial refund — finds the row and changes nothing. The coupon goes back to ISSUED with a
fresh seq, so every device of the site (and the member's coupons) sees it after its next pull.

Order: a refund queued offline may reach the cloud before the sale's redemption event (another outbox
stream). The ask is then kept as ``waiting`` and applied when the redemption arrives
(`apply_waiting`, called by `redeem.reconcile_offline` in the same transaction).

The table belongs to this module; it is made by the cloud's schema migrations (storage/schema.py,
migration 6).
"""

from __future__ import annotations

from typing import Any

from api.v1 import crm_pb2, marketing_pb2
from cloud_stub import validate
from cloud_stub.storage import Storage, now_ms
from cloud_stub.storage import db as sqldb

RESTORED, EXPIRED, NOT_RESTORED, WAITING = "restored", "expired", "not_restored", "waiting"

def _decide(conn: Any, redemption: Any, now: int) -> tuple[str, str]:
    if redemption["status"] != marketing_pb2.REDEMPTION_STATUS_ACCEPTED:
        return NOT_RESTORED, "the redemption was a double redemption; the coupon stays with the one that won"
    coupon = conn.execute("SELECT * FROM coupons WHERE coupon_id = ?", (redemption["coupon_id"],)).fetchone()
    if coupon is None:
        return NOT_RESTORED, "the coupon no longer exists"
    if coupon["valid_until_ms"] <= now:
        return EXPIRED, "the coupon has expired; it stays used"
    if coupon["status"] != crm_pb2.COUPON_STATUS_REDEEMED:
        return NOT_RESTORED, "the coupon is not marked redeemed"
    seq = sqldb.next_seq(conn)
    conn.execute("UPDATE coupons SET status = ?, seq = ? WHERE coupon_id = ? AND status = ?",
                 (crm_pb2.COUPON_STATUS_ISSUED, seq, coupon["coupon_id"], crm_pb2.COUPON_STATUS_REDEEMED))
    return RESTORED, ""


def unredeem_in(conn: Any, *, redemption_id: str, unredeem_id: str, member_id: str) -> dict[str, Any]:
    """Inside a write transaction: give the redemption's coupon back once (see the module docstring);
    returns the unredemption row (the existing one on a repeated ask)."""
    validate.ident(redemption_id, "restore_redemption_id")
    old = conn.execute("SELECT * FROM coupon_unredemptions WHERE redemption_id = ?", (redemption_id,)).fetchone()
    if old is not None:
        return dict(old)
    now = now_ms()
    red = conn.execute("SELECT * FROM redemptions WHERE redemption_id = ?", (redemption_id,)).fetchone()
    if red is None:
        state, reason, coupon_id = WAITING, "the redemption has not reached the cloud yet", ""
    elif red["member_id"] != member_id:
        state, reason, coupon_id = NOT_RESTORED, "the redemption belongs to another member", red["coupon_id"]
    else:
        (state, reason), coupon_id = _decide(conn, red, now), red["coupon_id"]
    row = {"redemption_id": redemption_id, "unredeem_id": unredeem_id, "coupon_id": coupon_id,
           "member_id": member_id, "state": state, "reason": reason, "asked_at_ms": now,
           "done_at_ms": 0 if state == WAITING else now}
    conn.execute("INSERT INTO coupon_unredemptions VALUES (:redemption_id, :unredeem_id, :coupon_id, :member_id,"
                 " :state, :reason, :asked_at_ms, :done_at_ms)", row)
    return row


def apply_waiting(conn: Any, redemption_id: str) -> dict[str, Any] | None:
    """Inside a write transaction, right after a redemption was recorded: apply an ask that came first."""
    old = conn.execute("SELECT * FROM coupon_unredemptions WHERE redemption_id = ? AND state = ?",
                       (redemption_id, WAITING)).fetchone()
    if old is None:
        return None
    red = conn.execute("SELECT * FROM redemptions WHERE redemption_id = ?", (redemption_id,)).fetchone()
    if red["member_id"] != old["member_id"]:
        state, reason = NOT_RESTORED, "the redemption belongs to another member"
    else:
        state, reason = _decide(conn, red, now_ms())
    conn.execute("UPDATE coupon_unredemptions SET state = ?, reason = ?, coupon_id = ?, done_at_ms = ?"
                 " WHERE redemption_id = ?", (state, reason, red["coupon_id"], now_ms(), redemption_id))
    return dict(old) | {"state": state, "reason": reason, "coupon_id": red["coupon_id"]}


def unredemptions(storage: Storage, member_id: str | None = None) -> list[dict[str, Any]]:
    """Every booked unredemption (one member's, when given), oldest first."""
    with storage.transaction("coupon unredemptions", write=False) as conn:
        rows = conn.execute("SELECT * FROM coupon_unredemptions" + (" WHERE member_id = ?" if member_id else "")
                            + " ORDER BY asked_at_ms, redemption_id", (member_id,) if member_id else ()).fetchall()
    return [dict(r) for r in rows]

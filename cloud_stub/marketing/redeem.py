"""Coupon redemption: online (single-use under any concurrency) and offline (reconciled later).

Online
    `redeem` runs in one write transaction (serialised with every other writer) and flips the coupon
    from ISSUED to REDEEMED with a conditional update, so of any number of concurrent calls exactly one
    succeeds; the others get ConflictError naming the redemption that won. A retry with the same
    redemption_id returns the original redemption.

Offline
    A device without network redeems against its replica and reports later (`reconcile_offline`). The
    first redemption the cloud records stands. A later one for the same coupon is kept, flagged
    CONFLICT, and answered with a compensating event (kind "coupon_double_redemption", the discount
    given without cover) for the device to act on — e.g. print a notice or charge the difference.
    Reports are idempotent on redemption_id.

Refunds
    A refunded sale's coupon goes back to the member through `unredeem` (rule and exactly-once there).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from api.v1 import crm_pb2, marketing_pb2
from cloud_stub import validate
from cloud_stub.errors import CloudError, ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.marketing import unredeem
from cloud_stub.storage import STREAM_COUPONS, Storage, now_ms
from cloud_stub.storage import db as sqldb

ACCEPTED = marketing_pb2.REDEMPTION_STATUS_ACCEPTED
CONFLICT = marketing_pb2.REDEMPTION_STATUS_CONFLICT
MAX_OFFLINE_BATCH = 500


def _discount(coupon: Any, order_cents: int) -> int:
    if coupon["kind"] == crm_pb2.COUPON_KIND_THRESHOLD and order_cents < coupon["threshold_cents"]:
        raise ConflictError(
            f"order of {order_cents / 100:.2f} is below the coupon's threshold of "
            f"{coupon['threshold_cents'] / 100:.2f} ({coupon['title']})"
        )
    return min(int(coupon["value_cents"]), order_cents)


def _check_usable(coupon: Any, member_id: str, store_id: str, at_ms: int) -> None:
    if coupon["member_id"] != member_id:
        raise ConflictError(f"coupon {coupon['coupon_id']!r} belongs to another member")
    if not coupon["valid_from_ms"] <= at_ms <= coupon["valid_until_ms"]:
        raise ConflictError(f"coupon {coupon['coupon_id']!r} is not valid at that time (expired or not yet valid)")
    stores = json.loads(coupon["store_ids"])
    if stores and store_id not in stores:
        raise ConflictError(f"coupon {coupon['coupon_id']!r} is valid only in stores {', '.join(stores)}")


def _validate(redemption_id: str, coupon_id: str, member_id: str, store_id: str, device_id: str, order: int) -> None:
    validate.ident(redemption_id, "redemption_id")
    validate.ident(coupon_id, "coupon_id")
    validate.ident(member_id, "member_id")
    validate.ident(store_id, "store_id")
    validate.ident(device_id, "device_id")
    validate.amount(order, "order_amount_cents")


def _insert(conn: Any, row: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO redemptions (redemption_id, coupon_id, member_id, store_id, device_id, order_amount_cents,"
        " discount_cents, redeemed_at_ms, received_at_ms, channel, status, compensation_id) VALUES"
        " (:redemption_id, :coupon_id, :member_id, :store_id, :device_id, :order_amount_cents, :discount_cents,"
        " :redeemed_at_ms, :received_at_ms, :channel, :status, :compensation_id)", row,
    )


def _mark_redeemed(conn: Any, coupon: Any) -> None:
    seq = sqldb.next_seq(conn)
    cur = conn.execute(
        "UPDATE coupons SET status = ?, seq = ? WHERE coupon_id = ? AND status = ?",
        (crm_pb2.COUPON_STATUS_REDEEMED, seq, coupon["coupon_id"], crm_pb2.COUPON_STATUS_ISSUED),
    )
    if cur.rowcount != 1:  # cannot happen under the write lock; refuse rather than double-spend
        raise ConflictError(f"coupon {coupon['coupon_id']!r} was redeemed concurrently")


def redeem(
    storage: Storage, *, redemption_id: str, coupon_id: str, member_id: str, store_id: str, device_id: str,
    order_amount_cents: int,
) -> dict[str, Any]:
    """Redeem a coupon online; exactly-once under concurrency, idempotent on redemption_id."""
    _validate(redemption_id, coupon_id, member_id, store_id, device_id, order_amount_cents)
    now = now_ms()
    with storage.transaction("redeem coupon") as conn:
        old = conn.execute("SELECT * FROM redemptions WHERE redemption_id = ?", (redemption_id,)).fetchone()
        if old is not None:
            if old["coupon_id"] != coupon_id or old["order_amount_cents"] != order_amount_cents:
                raise ConflictError(f"redemption_id {redemption_id!r} was used for another redemption")
            return dict(old)
        coupon = conn.execute("SELECT * FROM coupons WHERE coupon_id = ?", (coupon_id,)).fetchone()
        if coupon is None:
            raise NotFoundError(f"coupon {coupon_id!r} does not exist")
        if coupon["status"] != crm_pb2.COUPON_STATUS_ISSUED:
            won = conn.execute(
                "SELECT redemption_id, device_id, redeemed_at_ms FROM redemptions WHERE coupon_id = ? AND status = ?"
                " ORDER BY received_at_ms LIMIT 1", (coupon_id, ACCEPTED),
            ).fetchone()
            where = f" by redemption {won[0]!r} on device {won[1]!r}" if won else ""
            raise ConflictError(f"coupon {coupon_id!r} was already redeemed{where}; it is single-use")
        _check_usable(coupon, member_id, store_id, now)
        row = {"redemption_id": redemption_id, "coupon_id": coupon_id, "member_id": member_id,
               "store_id": store_id, "device_id": device_id, "order_amount_cents": order_amount_cents,
               "discount_cents": _discount(coupon, order_amount_cents), "redeemed_at_ms": now,
               "received_at_ms": now, "channel": "online", "status": ACCEPTED, "compensation_id": ""}
        _mark_redeemed(conn, coupon)
        sqldb.clear_tombstone(conn, STREAM_COUPONS, coupon_id, sqldb.member_site(conn, member_id))
        _insert(conn, row)
        unredeem.apply_waiting(conn, redemption_id)  # a refund that asked for the coupon back came first
    return row


def reconcile_offline(storage: Storage, device_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reconcile redemptions a device made offline. Returns one result per item:
    {redemption_id, outcome, reason, compensation (dict or None)}. The batch is one transaction."""
    validate.ident(device_id, "device_id")
    if len(items) > MAX_OFFLINE_BATCH:
        raise InvalidRequestError(f"at most {MAX_OFFLINE_BATCH} offline redemptions per report, got {len(items)}")
    for it in items:
        _validate(it["redemption_id"], it["coupon_id"], it["member_id"], it["store_id"], device_id,
                  it["order_amount_cents"])
        validate.event_time(it["redeemed_at_ms"], "redeemed_at_ms")
    if len({it["redemption_id"] for it in items}) != len(items):
        raise InvalidRequestError("a redemption_id appears twice in one report")
    results = []
    now = now_ms()
    with storage.transaction("reconcile offline redemptions") as conn:
        for it in items:
            results.append(_reconcile_one(conn, device_id, it, now))
    return results


def _compensate(conn: Any, device_id: str, it: dict[str, Any], amount: int, kind: str, message: str) -> dict[str, Any]:
    event = {"event_id": f"comp-{uuid.uuid4()}", "kind": kind, "device_id": device_id,
             "coupon_id": it["coupon_id"], "redemption_id": it["redemption_id"], "member_id": it["member_id"],
             "amount_cents": amount, "message": message, "created_at_ms": now_ms()}
    conn.execute(
        "INSERT INTO compensations (event_id, kind, device_id, coupon_id, redemption_id, member_id, amount_cents,"
        " message, created_at_ms) VALUES (:event_id, :kind, :device_id, :coupon_id, :redemption_id, :member_id,"
        " :amount_cents, :message, :created_at_ms)", event,
    )
    return event


def _reconcile_one(conn: Any, device_id: str, it: dict[str, Any], now: int) -> dict[str, Any]:
    rid = it["redemption_id"]
    old = conn.execute("SELECT * FROM redemptions WHERE redemption_id = ?", (rid,)).fetchone()
    if old is not None:
        comp = None
        if old["compensation_id"]:
            comp = dict(conn.execute("SELECT * FROM compensations WHERE event_id = ?",
                                     (old["compensation_id"],)).fetchone())
        return {"redemption_id": rid, "outcome": marketing_pb2.RECONCILE_OUTCOME_DUPLICATE,
                "reason": "reported before; nothing changed", "compensation": comp}
    coupon = conn.execute("SELECT * FROM coupons WHERE coupon_id = ?", (it["coupon_id"],)).fetchone()
    row = {**it, "device_id": device_id, "received_at_ms": now, "channel": "offline", "compensation_id": ""}
    try:
        if coupon is None:
            raise NotFoundError(f"coupon {it['coupon_id']!r} does not exist")
        _check_usable(coupon, it["member_id"], it["store_id"], it["redeemed_at_ms"])
        discount = _discount(coupon, it["order_amount_cents"])
    except CloudError as err:
        # The device granted a discount the cloud cannot honour: compensate the full coupon value.
        value = int(coupon["value_cents"]) if coupon is not None else 0
        comp = _compensate(conn, device_id, it, min(value, it["order_amount_cents"]), "coupon_invalid", str(err))
        _insert(conn, {**row, "discount_cents": 0, "status": CONFLICT, "compensation_id": comp["event_id"]})
        return {"redemption_id": rid, "outcome": marketing_pb2.RECONCILE_OUTCOME_REJECTED, "reason": str(err),
                "compensation": comp}
    if coupon["status"] != crm_pb2.COUPON_STATUS_ISSUED:
        msg = (f"coupon {it['coupon_id']!r} had already been redeemed; the {discount / 100:.2f} discount given "
               "offline is a double redemption")
        comp = _compensate(conn, device_id, it, discount, "coupon_double_redemption", msg)
        _insert(conn, {**row, "discount_cents": discount, "status": CONFLICT, "compensation_id": comp["event_id"]})
        return {"redemption_id": rid, "outcome": marketing_pb2.RECONCILE_OUTCOME_CONFLICT, "reason": msg,
                "compensation": comp}
    _mark_redeemed(conn, coupon)
    _insert(conn, {**row, "discount_cents": discount, "status": ACCEPTED})
    unredeem.apply_waiting(conn, rid)  # a refund queued offline that asked for the coupon back came first
    return {"redemption_id": rid, "outcome": marketing_pb2.RECONCILE_OUTCOME_ACCEPTED, "reason": "",
            "compensation": None}

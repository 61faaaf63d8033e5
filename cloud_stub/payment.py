"""Pay-by-face payments: Authorize → Capture → Refund, idempotent under retries, with limits.

Authorize decides in this order and records the answer under the idempotency key, so a retry (same
key, same request) gets the same answer — approved or declined — and never a second payment; the same
key with a different request is a ConflictError. Declines carry a code and a sentence for the cashier:

    liveness_failed          the liveness check did not pass
    match_too_weak           match score below PAY_MATCH_MIN
    needs_phone_confirmation score below PAY_MATCH_CONFIDENT and the last 4 phone digits not confirmed
    amount_over_limit        above PER_PAYMENT_LIMIT_CENTS
    member_daily_limit       the member's approved payments in the last 24 h would exceed MEMBER_DAILY_LIMIT_CENTS
    device_daily_limit       the device's approved payments in the last 24 h would exceed DEVICE_DAILY_LIMIT_CENTS

Capture books the payment as a purchase transaction (txn_id = payment_id); a refund books a return
(txn_id = refund_id). A payment a π-POS took offline exists only as the purchase transaction its
payment event booked; Refund accepts its payment_id too (bounded by the refunds already booked), and
a refund the device queued offline arrives as a payment event with ``refund_of`` and comes here with
the same refund_id, so whichever path reaches the cloud first refunds and the other is a no-op. All of it runs in one write transaction per call.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from api.v1 import crm_service_pb2, payment_pb2
from cloud_stub import validate
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.marketing import unredeem
from cloud_stub.storage import Storage, now_ms
from cloud_stub.storage import db as sqldb

PAY_MATCH_MIN = 0.80
PAY_MATCH_CONFIDENT = 0.92
PER_PAYMENT_LIMIT_CENTS = 500_000
MEMBER_DAILY_LIMIT_CENTS = 1_000_000
DEVICE_DAILY_LIMIT_CENTS = 20_000_000
WINDOW_MS = 24 * 3600 * 1000

AUTHORIZED = payment_pb2.PAYMENT_STATUS_AUTHORIZED
DECLINED = payment_pb2.PAYMENT_STATUS_DECLINED
CAPTURED = payment_pb2.PAYMENT_STATUS_CAPTURED
REFUNDED = payment_pb2.PAYMENT_STATUS_REFUNDED


def _decide(conn: Any, req: dict[str, Any], now: int) -> tuple[str, str]:
    ev = req["evidence"]
    if not ev["liveness_passed"]:
        return "liveness_failed", "活体检测未通过 — the liveness check failed; ask the customer to retry or pay another way"
    if ev["match_score"] < PAY_MATCH_MIN:
        return "match_too_weak", f"face match {ev['match_score']:.2f} is below {PAY_MATCH_MIN}; pay another way"
    if ev["match_score"] < PAY_MATCH_CONFIDENT and not ev["phone_last4_confirmed"]:
        return "needs_phone_confirmation", "ask the customer for the last 4 digits of their phone, then retry with a new key"
    if req["amount_cents"] > PER_PAYMENT_LIMIT_CENTS:
        return "amount_over_limit", f"pay-by-face is limited to {PER_PAYMENT_LIMIT_CENTS / 100:.2f} per payment"
    since = now - WINDOW_MS
    for column, value, limit, code in (
        ("member_id", req["member_id"], MEMBER_DAILY_LIMIT_CENTS, "member_daily_limit"),
        ("device_id", req["device_id"], DEVICE_DAILY_LIMIT_CENTS, "device_daily_limit"),
    ):
        used = conn.execute(
            f"SELECT COALESCE(SUM(amount_cents - refunded_cents), 0) FROM payments WHERE {column} = ?"
            " AND created_at_ms > ? AND status != ?", (value, since, DECLINED),
        ).fetchone()[0]
        if used + req["amount_cents"] > limit:
            who = "member" if column == "member_id" else "device"
            return code, f"the {who}'s 24-hour pay-by-face limit of {limit / 100:.2f} would be exceeded"
    return "", ""


def _result(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["approved"] = d["status"] != DECLINED
    return d


def authorize(storage: Storage, req: dict[str, Any]) -> dict[str, Any]:
    """Authorise a payment (see the module docstring); `req` has the AuthorizeRequest fields."""
    validate.ident(req["idempotency_key"], "idempotency_key")
    validate.ident(req["member_id"], "member_id")
    validate.ident(req["device_id"], "device_id")
    validate.ident(req["store_id"], "store_id")
    validate.amount(req["amount_cents"], "amount_cents")
    score = req["evidence"]["match_score"]
    if not 0.0 <= score <= 1.0:
        raise InvalidRequestError(f"evidence.match_score must be between 0 and 1, got {score}")
    digest = hashlib.sha256(json.dumps(req, sort_keys=True).encode()).hexdigest()
    now = now_ms()
    with storage.transaction("authorize payment") as conn:
        old = conn.execute("SELECT * FROM payments WHERE idempotency_key = ?", (req["idempotency_key"],)).fetchone()
        if old is not None:
            if old["request_hash"] != digest:
                raise ConflictError(
                    f"idempotency_key {req['idempotency_key']!r} was used for a different payment; use a new key"
                )
            return _result(old)
        sqldb.member_site(conn, req["member_id"])
        device = conn.execute("SELECT store_id FROM devices WHERE device_id = ?", (req["device_id"],)).fetchone()
        if device is None:
            raise NotFoundError(f"device {req['device_id']!r} is not registered; claim it first")
        if conn.execute("SELECT 1 FROM stores WHERE store_id = ?", (req["store_id"],)).fetchone() is None:
            raise NotFoundError(f"store {req['store_id']!r} does not exist")
        code, reason = _decide(conn, req, now)
        row = {"payment_id": f"pay-{uuid.uuid4()}", "idempotency_key": req["idempotency_key"],
               "request_hash": digest, "member_id": req["member_id"], "device_id": req["device_id"],
               "store_id": req["store_id"], "amount_cents": req["amount_cents"],
               "status": DECLINED if code else AUTHORIZED, "decline_code": code, "decline_reason": reason,
               "match_score": score, "liveness_passed": int(req["evidence"]["liveness_passed"]),
               "captured_cents": 0, "refunded_cents": 0, "created_at_ms": now}
        conn.execute(f"INSERT INTO payments ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
        return _result(conn.execute("SELECT * FROM payments WHERE payment_id = ?", (row["payment_id"],)).fetchone())


def _payment(conn: Any, payment_id: str) -> Any:
    row = conn.execute("SELECT * FROM payments WHERE payment_id = ?", (payment_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"payment {payment_id!r} does not exist")
    return row


def get_payment(storage: Storage, payment_id: str) -> dict[str, Any]:
    """One payment."""
    validate.ident(payment_id, "payment_id")
    with storage.transaction("get payment", write=False) as conn:
        return _result(_payment(conn, payment_id))


def capture(storage: Storage, payment_id: str, amount_cents: int = 0) -> dict[str, Any]:
    """Capture an authorised payment (all of it when amount_cents is 0); a repeated capture of the
    same amount returns the captured payment."""
    validate.ident(payment_id, "payment_id")
    validate.amount(amount_cents, "amount_cents", allow_zero=True)
    with storage.transaction("capture payment") as conn:
        p = _payment(conn, payment_id)
        amount = amount_cents or p["amount_cents"]
        if p["status"] == DECLINED:
            raise ConflictError(f"payment {payment_id!r} was declined ({p['decline_code']}); nothing to capture")
        if p["status"] in (CAPTURED, REFUNDED):
            if p["captured_cents"] == amount:
                return _result(p)
            raise ConflictError(f"payment {payment_id!r} was already captured for {p['captured_cents']} cents")
        if amount > p["amount_cents"]:
            raise ConflictError(f"cannot capture {amount} cents: only {p['amount_cents']} were authorised")
        conn.execute("UPDATE payments SET status = ?, captured_cents = ? WHERE payment_id = ?",
                     (CAPTURED, amount, payment_id))
        store = conn.execute("SELECT brand FROM stores WHERE store_id = ?", (p["store_id"],)).fetchone()
        conn.execute(
            "INSERT OR IGNORE INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (payment_id, p["member_id"], p["store_id"], store[0] if store else "", amount, now_ms(),
             crm_service_pb2.TRANSACTION_KIND_PURCHASE),
        )
        return _result(_payment(conn, payment_id))


def refund(storage: Storage, *, refund_id: str, payment_id: str, amount_cents: int,
           restore_redemption_id: str = "") -> dict[str, Any]:
    """Refund part or all of a captured payment, idempotent on refund_id. With ``restore_redemption_id``
    the sale's coupon goes back to the member in the same transaction (marketing.unredeem, once per
    redemption; a repeated refund id asks nothing again)."""
    validate.ident(refund_id, "refund_id")
    validate.ident(payment_id, "payment_id")
    validate.amount(amount_cents, "amount_cents")
    with storage.transaction("refund payment") as conn:
        old = conn.execute("SELECT payment_id, amount_cents FROM refunds WHERE refund_id = ?", (refund_id,)).fetchone()
        if old is not None:
            if tuple(old) != (payment_id, amount_cents):
                raise ConflictError(f"refund_id {refund_id!r} was used for another refund; use a new id")
            online = conn.execute("SELECT 1 FROM payments WHERE payment_id = ?", (payment_id,)).fetchone()
            return _result(_payment(conn, payment_id)) if online else _offline_result(conn, payment_id)
        if conn.execute("SELECT 1 FROM payments WHERE payment_id = ?", (payment_id,)).fetchone() is None:
            out = _refund_offline(conn, refund_id, payment_id, amount_cents)
            if restore_redemption_id:
                unredeem.unredeem_in(conn, redemption_id=restore_redemption_id, unredeem_id=refund_id,
                                     member_id=out["member_id"])
            return out
        p = _payment(conn, payment_id)
        if p["status"] not in (CAPTURED, REFUNDED):
            raise ConflictError(f"payment {payment_id!r} is not captured; cancel the authorisation instead")
        left = p["captured_cents"] - p["refunded_cents"]
        if amount_cents > left:
            raise ConflictError(f"cannot refund {amount_cents} cents: only {left} are left on payment {payment_id!r}")
        refunded = p["refunded_cents"] + amount_cents
        conn.execute("UPDATE payments SET refunded_cents = ?, status = ? WHERE payment_id = ?",
                     (refunded, REFUNDED if refunded == p["captured_cents"] else CAPTURED, payment_id))
        now = now_ms()
        conn.execute("INSERT INTO refunds (refund_id, payment_id, amount_cents, created_at_ms) VALUES (?, ?, ?, ?)",
                     (refund_id, payment_id, amount_cents, now))
        store = conn.execute("SELECT brand FROM stores WHERE store_id = ?", (p["store_id"],)).fetchone()
        conn.execute(
            "INSERT OR IGNORE INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (refund_id, p["member_id"], p["store_id"], store[0] if store else "", amount_cents, now,
             crm_service_pb2.TRANSACTION_KIND_RETURN),
        )
        if restore_redemption_id:
            unredeem.unredeem_in(conn, redemption_id=restore_redemption_id, unredeem_id=refund_id,
                                 member_id=p["member_id"])
        return _result(_payment(conn, payment_id))


def _refund_offline(conn: Any, refund_id: str, payment_id: str, amount_cents: int) -> dict[str, Any]:
    """Refund a payment a π-POS took offline: the cloud knows it only as the purchase transaction its
    payment event booked (txn_id = payment_id), with no Authorize/Capture record. The refunds already
    booked against it bound what is left; the return is booked as a transaction like any refund."""
    sale = conn.execute("SELECT * FROM transactions WHERE txn_id = ? AND kind = ?",
                        (payment_id, crm_service_pb2.TRANSACTION_KIND_PURCHASE)).fetchone()
    if sale is None:
        raise NotFoundError(f"payment {payment_id!r} does not exist (an offline payment is known once its device "
                            "has synced)")
    done = conn.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE payment_id = ?",
                        (payment_id,)).fetchone()[0]
    left = sale["amount_cents"] - done
    if amount_cents > left:
        raise ConflictError(f"cannot refund {amount_cents} cents: only {left} are left on payment {payment_id!r}")
    now = now_ms()
    conn.execute("INSERT INTO refunds (refund_id, payment_id, amount_cents, created_at_ms) VALUES (?, ?, ?, ?)",
                 (refund_id, payment_id, amount_cents, now))
    conn.execute(
        "INSERT OR IGNORE INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (refund_id, sale["member_id"], sale["store_id"], sale["brand"], amount_cents, now,
         crm_service_pb2.TRANSACTION_KIND_RETURN),
    )
    return _offline_result(conn, payment_id)


def _offline_result(conn: Any, payment_id: str) -> dict[str, Any]:
    sale = conn.execute("SELECT * FROM transactions WHERE txn_id = ?", (payment_id,)).fetchone()
    refunded = conn.execute("SELECT COALESCE(SUM(amount_cents), 0) FROM refunds WHERE payment_id = ?",
                            (payment_id,)).fetchone()[0]
    return {"payment_id": payment_id, "status": REFUNDED if refunded >= sale["amount_cents"] else CAPTURED,
            "approved": True, "member_id": sale["member_id"], "amount_cents": sale["amount_cents"],
            "captured_cents": sale["amount_cents"], "refunded_cents": refunded, "created_at_ms": sale["at_ms"]}

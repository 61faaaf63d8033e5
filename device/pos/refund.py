"""Refunds by scanning the receipt's QR code: the whole sale or part of it, by the path its payment needs.

    cash                                  → refunded here, the drawer opens
    face, paid online                     → `Payment.Refund` in the cloud, then recorded here
    face, paid offline, not yet synced    → recorded here and queued in the outbox ("outbox" path)
    face, paid offline, synced            → `Payment.Refund` (the cloud refunds the purchase its payment
                                            event booked); cloud unreachable → the outbox path
    face, paid offline, rejected by cloud → refused: the service desk decides (the member was never charged)

Scanning a receipt opens the sale (`open_sale`: lines, paid, already refunded, what is left, the next
refund number); the cashier enters an amount or ticks lines and confirms (`refund`). A sale may have
several partial refunds up to what was paid, never more. The money rules (line shares, the coupon,
points) are in `refund_rules`.

Idempotency. Refund n of a sale has the id ``ref-<sale_id>.<n>``; the page sends n with the confirm
(the number it showed), and the row is written as "pending" *before* any cloud call. So a double tap
(same n) returns the first refund, a retry after a lost answer or a crash reuses the same id (the
cloud's refund is idempotent on it), and an online refund and a queued one can never both apply. While
a refund is pending (the cloud was unreachable for an online sale), every confirm of that sale retries
it — same id, same amount — until it goes through; nothing else is refunded meanwhile.

Offline refunds: the refund event (a `PaymentEvent` with `refund_of`) goes into the same "payments"
stream as the sale's payment event, so the cloud applies sale-then-refund in that order. The local
refund (the row marked done, the sale's refunded amount, points taken back, the coupon freed here when
it goes back, reconciliation items closed on a full refund, the audit entry and the outbox events) is
one transaction: a process killed after it loses nothing and one killed before it refunded nothing
(the pending row is retried under the same id).
"""

from __future__ import annotations

import json
import time
from typing import Any

from api.v1 import sync_pb2
from device.pos import reconcile, store
from device.pos.audit import AuditLog
from device.pos.payment import PaymentError, PaymentGateway, PaymentOffline
from device.pos.receipt import sale_id_from_qr
from device.pos.refund_rules import Plan, line_shares, plan
from sync.outbox import enqueue


class RefundRefused(PaymentError):
    """A refund that must not happen here (not a receipt, unknown sale, nothing left, rejected sale)."""


def refund_id_of(sale_id: str, seq: int = 1) -> str:
    """The id of refund ``seq`` of a sale (online and offline paths share it)."""
    return f"ref-{sale_id}.{seq}"


def redemption_id_of(sale_id: str) -> str:
    """The id of the sale's coupon redemption (set by the checkout)."""
    return f"red-{sale_id}"


def _sync_state(replica: Any, event_id: str | None) -> str:
    """Where the sale's payment event is: "pending" (outbox), "rejected" (quarantine) or "synced"."""
    if not event_id:
        return "synced"
    with replica._lock:
        conn = replica._conn
        if conn.execute("SELECT 1 FROM outbox WHERE event_id = ?", (event_id,)).fetchone():
            return "pending"
        if conn.execute("SELECT 1 FROM quarantine WHERE event_id = ?", (event_id,)).fetchone():
            return "rejected"
    return "synced"


def _refused(audit: AuditLog, data: dict[str, Any], message: str) -> RefundRefused:
    audit.record("refund", data | {"refused": message.split(" · ")[-1]})
    return RefundRefused(message)


def _coupon_valid(replica: Any, coupon_id: str | None, now_ms: int) -> bool:
    if not coupon_id:
        return False
    with replica._lock:
        row = replica._conn.execute("SELECT valid_until_ms FROM coupons WHERE coupon_id = ?", (coupon_id,)).fetchone()
    # Unknown here (e.g. dropped from the replica): let the cloud decide; it keeps an expired coupon used.
    return row is None or int(row[0]) > now_ms


def _state(replica: Any, sale: dict[str, Any]) -> dict[str, Any]:
    refunds = store.refunds(replica, sale["sale_id"])
    done = [r for r in refunds if r["state"] == "done"]
    restored = any(r["coupon"] in ("restored", "expired") for r in refunds)
    items = [int(i["cents"]) for i in sale["items"]]
    shares = line_shares(items, int(sale["amount_cents"]), int(sale["paid_cents"]), full_price=restored)
    returned = {n for r in refunds for n in r["lines"]}
    left = int(sale["paid_cents"]) - int(sale["refunded_cents"])
    return {"refunds": refunds, "done": done, "pending": next((r for r in refunds if r["state"] == "pending"), None),
            "restored": restored, "shares": shares, "returned": returned, "left": left,
            "next_seq": len(refunds) + 1}


def open_sale(replica: Any, audit: AuditLog, code: str, by: str = "cashier") -> dict[str, Any]:
    """The sale a scanned receipt names, for the refund screen: the sale plus ``lines`` (name, list
    cents, refund share, returned), ``refunded_cents``, ``left_cents``, ``next_seq`` and ``pending``."""
    sale_id = sale_id_from_qr(code)
    if sale_id is None:
        raise _refused(audit, {"code": code[:120], "by": by},
                       "无法识别的二维码，请扫描小票底部的二维码 · this code is not a receipt QR; scan the QR at the "
                       "bottom of the receipt")
    sale = store.sale(replica, sale_id)
    if sale is None:
        raise _refused(audit, {"code": code[:120], "by": by},
                       "这张小票不是本机的销售单 · this receipt is not a sale of this device")
    st = _state(replica, sale)
    lines = [{"n": n, "name": i["name"], "cents": int(i["cents"]), "share": st["shares"][n],
              "returned": n in st["returned"]} for n, i in enumerate(sale["items"])]
    return sale | {"lines": lines, "left_cents": st["left"], "next_seq": st["next_seq"],
                   "pending": st["pending"], "refund_count": len(st["done"])}


def refund(replica: Any, audit: AuditLog, gateway: PaymentGateway | None, sale_id: str, *, seq: int,
           cents: int | None = None, lines: list[int] | None = None, by: str = "cashier",
           store_id: str = "") -> dict[str, Any]:
    """Refund ``cents`` (or the shares of ``lines``) of a sale as its refund number ``seq``.

    Returns the sale plus ``refund_cents`` (net, given back), ``refund_seq``, ``refund_id``,
    ``clawback_cents``, ``coupon``, ``refund_points``, ``refunded_at_ms``, ``refund_path`` and
    ``repeated`` (True when ``seq`` was refunded already: a double tap, nothing new). RefundRefused
    explains a no; PaymentOffline means an online-paid sale must wait for the cloud (the refund stays
    pending under its id and the next confirm retries it)."""
    sale = store.sale(replica, sale_id)
    entry = {"sale_id": sale_id, "by": by, "seq": seq}
    if sale is None:
        raise _refused(audit, entry, "这张小票不是本机的销售单 · this receipt is not a sale of this device")
    if seq < 1:
        raise _refused(audit, entry, "退款序号无效 · invalid refund number")
    st = _state(replica, sale)
    if seq <= len(st["refunds"]) and st["refunds"][seq - 1]["state"] == "done":
        return _result(replica, sale_id, st["refunds"][seq - 1], repeated=True)
    row = st["pending"]
    if row is None:
        if seq != st["next_seq"]:
            raise _refused(audit, entry, "退款单号已变化，请重新扫描小票 · the sale changed; scan the receipt again")
        row = _new_pending(replica, audit, sale, st, seq, cents, lines, entry)
    return _carry_out(replica, audit, gateway, sale, row, by, store_id)


def _plan_of(replica: Any, sale: dict[str, Any], st: dict[str, Any], cents: int | None,
             lines: list[int] | None, now: int) -> Plan:
    """The plan of refunding ``cents`` (or the shares of ``lines``) of the sale as it is now — the one
    computation behind both the confirm (`refund`) and the screen's `preview`. ValueError (the
    cashier's sentence) when it cannot be booked."""
    if sale["mode"] == "offline" and _sync_state(replica, sale["payment_event_id"]) == "rejected":
        raise ValueError("云端未接受此离线支付，请到服务台处理 · the cloud did not accept this offline payment; the "
                         "service desk handles it")
    if st["left"] <= 0:
        raise ValueError("此单已退款 · this sale was already refunded"
                         if sale["refunded_cents"] else "此单没有可退金额 · nothing was paid on this sale")
    if lines:
        bad = [n for n in lines if not 0 <= n < len(st["shares"]) or n in st["returned"]]
        if bad or len(set(lines)) != len(lines):
            raise ValueError("所选商品已退或不存在 · a ticked line was already returned or does not exist")
        remaining = [n for n in range(len(st["shares"])) if n not in st["returned"]]
        # Every line still here returned → everything left (the rounding cents go with the last refund).
        gross = st["left"] if sorted(lines) == remaining else min(st["left"], sum(st["shares"][n] for n in lines))
    else:
        gross = int(cents or 0)
    return plan(amount=int(sale["amount_cents"]), paid=int(sale["paid_cents"]), discount=int(sale["discount_cents"]),
                threshold=int(sale.get("coupon_threshold_cents") or 0), points=int(sale["points"]),
                refunded=int(sale["refunded_cents"]), gross=gross, coupon_restored=st["restored"],
                coupon_valid=_coupon_valid(replica, sale["coupon_id"], now), has_coupon=bool(sale["coupon_id"]),
                lines=sorted(lines or []))


def _new_pending(replica: Any, audit: AuditLog, sale: dict[str, Any], st: dict[str, Any], seq: int,
                 cents: int | None, lines: list[int] | None, entry: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    try:
        p = _plan_of(replica, sale, st, cents, lines, now)
    except ValueError as err:
        raise _refused(audit, entry | ({"lines": sorted(lines)} if lines else {"cents": int(cents or 0)}),
                       str(err)) from err
    row = {"refund_id": refund_id_of(sale["sale_id"], seq), "sale_id": sale["sale_id"], "seq": seq,
           "amount_cents": p.net_cents, "lines": json.dumps(p.lines), "clawback_cents": p.clawback_cents,
           "points": p.points, "coupon": p.coupon, "state": "pending", "path": "", "event_id": None,
           "created_at_ms": now, "refunded_at_ms": None}
    with replica.transaction() as conn:
        if conn.execute("SELECT 1 FROM pos_refunds WHERE sale_id = ? AND (seq = ? OR state = 'pending')",
                        (sale["sale_id"], seq)).fetchone():
            raise RefundRefused("另一笔退款正在处理 · another refund of this sale is in progress; scan again")
        conn.execute("INSERT INTO pos_refunds (refund_id, sale_id, seq, amount_cents, lines, clawback_cents, points,"
                     " coupon, state, path, event_id, created_at_ms, refunded_at_ms) VALUES (:refund_id, :sale_id,"
                     " :seq, :amount_cents, :lines, :clawback_cents, :points, :coupon, :state, :path, :event_id,"
                     " :created_at_ms, :refunded_at_ms)", row)
    return row | {"lines": p.lines}


def _carry_out(replica: Any, audit: AuditLog, gateway: PaymentGateway | None, sale: dict[str, Any],
               row: dict[str, Any], by: str, store_id: str) -> dict[str, Any]:
    restore = redemption_id_of(sale["sale_id"]) if row["coupon"] == "restored" else ""
    path = "cash" if sale["mode"] == "cash" else "online"
    if sale["mode"] == "offline":
        state = _sync_state(replica, sale["payment_event_id"])
        path = "outbox" if state == "pending" or gateway is None else "online"
    if path == "online":
        if gateway is None:
            raise RefundRefused("无法连接云端 · the cloud is not configured; refunds of face payments need it")
        try:
            gateway.refund(row["refund_id"], sale["payment_id"], int(row["amount_cents"]), restore)
        except PaymentOffline:
            if sale["mode"] != "offline":
                raise  # an online payment is refunded by the cloud only: the pending refund is retried
            path = "outbox"  # the sale is in the cloud already; the queued refund follows it
    if path == "outbox" and not store_id:
        raise RefundRefused("离线退款需要门店编号 · an offline refund needs this device's store id")
    return _record(replica, audit, sale, row, path, by, store_id, restore)


def _record(replica: Any, audit: AuditLog, sale: dict[str, Any], row: dict[str, Any], path: str, by: str,
            store_id: str, restore: str) -> dict[str, Any]:
    """The local refund, its events and its audit entry in one transaction."""
    now = int(time.time() * 1000)
    member, points, amount = sale["member_id"], int(row["points"]), int(row["amount_cents"])
    with replica.transaction() as conn:
        cur = conn.execute("SELECT state FROM pos_refunds WHERE refund_id = ?", (row["refund_id"],)).fetchone()
        if cur is None or cur[0] != "pending":
            # Another confirm won the race (the cloud's refund is idempotent on the id: nothing doubled).
            raise RefundRefused("此退款已完成 · this refund was already done")
        event_id = None
        if path == "outbox":
            event_id = enqueue(conn, replica.cipher, "payment", sync_pb2.PaymentEvent(
                payment_id=row["refund_id"], member_id=member, store_id=store_id, amount_cents=amount,
                offline=True, refund_of=sale["payment_id"], restore_redemption_id=restore), now_ms=now)
        if member and points:
            ev = enqueue(conn, replica.cipher, "points", sync_pb2.PointsEvent(
                member_id=member, delta=-points, reason="退款扣回积分"), now_ms=now)
            conn.execute("INSERT INTO local_points VALUES (?, ?, ?, ?)", (ev, member, -points, now))
        if row["coupon"] == "restored" and sale["coupon_id"]:
            # The coupon is no longer used by this device: usable here again as soon as the replica says
            # it is issued (at once when the redemption had not synced; after the cloud's unredeem otherwise).
            conn.execute("DELETE FROM local_redemptions WHERE coupon_id = ? AND member_id = ?",
                         (sale["coupon_id"], member))
        conn.execute("UPDATE pos_refunds SET state = 'done', path = ?, event_id = ?, refunded_at_ms = ?"
                     " WHERE refund_id = ?", (path, event_id, now, row["refund_id"]))
        refunded = int(sale["refunded_cents"]) + amount
        status = "refunded" if refunded >= int(sale["paid_cents"]) else "partly_refunded"
        conn.execute("UPDATE pos_sales SET status = ?, refunded_cents = ? WHERE sale_id = ?",
                     (status, refunded, sale["sale_id"]))
        closed = 0
        if status == "refunded":
            # A coupon difference still to collect on this sale is moot once the whole sale is refunded;
            # the cloud's operator is told so, as for the cashier's 已补收 (device/pos/reconcile.py).
            moot = [r[0] for r in conn.execute("SELECT compensation_id FROM pos_reconciliation"
                                               " WHERE sale_id = ? AND state = 'open'", (sale["sale_id"],))]
            for comp_id in moot:
                reconcile.close_for_refund(conn, replica.cipher, comp_id, sale["sale_id"], by, now)
            closed = len(moot)
        audit.append(conn, "refund", {"sale_id": sale["sale_id"], "refund_id": row["refund_id"], "seq": row["seq"],
                                      "by": by, "mode": sale["mode"], "path": path, "event_id": event_id,
                                      "amount_cents": amount, "clawback_cents": int(row["clawback_cents"]),
                                      "lines": row["lines"], "coupon": row["coupon"], "points": -points,
                                      "refunded_cents": refunded, "reconciliation_closed": closed}, now)
    done = next(r for r in store.refunds(replica, sale["sale_id"]) if r["refund_id"] == row["refund_id"])
    return _result(replica, sale["sale_id"], done, repeated=False)


def _result(replica: Any, sale_id: str, row: dict[str, Any], *, repeated: bool) -> dict[str, Any]:
    out = store.sale(replica, sale_id)
    assert out is not None
    return out | {"refund_cents": int(row["amount_cents"]), "refund_seq": int(row["seq"]),
                  "refund_id": row["refund_id"], "clawback_cents": int(row["clawback_cents"]),
                  "coupon": row["coupon"], "refund_points": int(row["points"]), "refunded_at_ms": row["refunded_at_ms"],
                  "refund_path": row["path"], "refund_lines": row["lines"], "repeated": repeated,
                  "left_cents": int(out["paid_cents"]) - int(out["refunded_cents"])}


def preview(replica: Any, sale_id: str, seq: int, *, cents: int | None = None,
            lines: list[int] | None = None) -> dict[str, Any]:
    """What confirming refund ``seq`` of a sale with ``cents`` (or ``lines``) would do, computed by the
    same `_plan_of` the confirm uses, without writing anything (not even an audit entry: the screen
    asks on every tick and keypress).

    Returns ``ok`` and ``reason`` (the cashier's sentence when the confirm would be refused), the
    plan's ``gross_cents``, ``net_cents`` (given back), ``clawback_cents``, ``coupon``, ``points``,
    ``kept_list_cents``, ``threshold_cents``, ``left_after_cents`` (left to refund afterwards),
    ``retry`` (a pending refund: the confirm retries it, whatever was typed) and ``hint``: for an
    amount equal to a line's list price when that line's paid share differs (a discounted sale), that
    line's ``{"n", "name", "list_cents", "share_cents"}``, else None."""
    out: dict[str, Any] = {"ok": False, "reason": "", "gross_cents": 0, "net_cents": 0, "clawback_cents": 0,
                           "coupon": "", "points": 0, "kept_list_cents": 0, "threshold_cents": 0,
                           "left_after_cents": 0, "retry": False, "hint": None}
    sale = store.sale(replica, sale_id)
    if sale is None:
        return out | {"reason": "这张小票不是本机的销售单 · this receipt is not a sale of this device"}
    st = _state(replica, sale)
    out["left_after_cents"] = st["left"]
    if cents is not None and not lines:
        line = next((n for n, i in enumerate(sale["items"]) if int(i["cents"]) == cents
                     and st["shares"][n] != cents and n not in st["returned"]), None)
        if line is not None:
            out["hint"] = {"n": line, "name": sale["items"][line]["name"], "list_cents": cents,
                           "share_cents": st["shares"][line]}
    row = st["pending"]
    if row is not None:  # the confirm retries it: show that refund, not what was typed
        net = int(row["amount_cents"])
        return out | {"ok": True, "retry": True, "gross_cents": net + int(row["clawback_cents"]), "net_cents": net,
                      "clawback_cents": int(row["clawback_cents"]), "coupon": row["coupon"],
                      "points": int(row["points"]), "left_after_cents": st["left"] - net}
    if seq != st["next_seq"]:
        return out | {"reason": "退款单号已变化，请重新扫描小票 · the sale changed; scan the receipt again"}
    try:
        p = _plan_of(replica, sale, st, cents, lines, int(time.time() * 1000))
    except ValueError as err:
        return out | {"reason": str(err)}
    return out | {"ok": True, "gross_cents": p.gross_cents, "net_cents": p.net_cents,
                  "clawback_cents": p.clawback_cents, "coupon": p.coupon, "points": p.points,
                  "kept_list_cents": p.kept_list_cents, "threshold_cents": p.threshold_cents,
                  "left_after_cents": st["left"] - p.net_cents}


def refund_by_qr(replica: Any, audit: AuditLog, gateway: PaymentGateway | None, code: str,
                 by: str = "cashier", store_id: str = "") -> dict[str, Any]:
    """Refund everything left of the sale a scanned receipt names (a retry of a pending refund first);
    returns what `refund` returns."""
    sale = open_sale(replica, audit, code, by)
    if sale["pending"] is not None:
        return refund(replica, audit, gateway, sale["sale_id"], seq=sale["pending"]["seq"], by=by, store_id=store_id)
    return refund(replica, audit, gateway, sale["sale_id"], seq=sale["next_seq"], cents=sale["left_cents"], by=by,
                  store_id=store_id)


__all__ = ["Plan", "RefundRefused", "open_sale", "preview", "redemption_id_of", "refund", "refund_by_qr",
           "refund_id_of"]

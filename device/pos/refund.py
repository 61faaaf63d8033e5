"""Refunds by scanning the receipt's QR code: the whole sale, once, by the path its payment needs.

    cash                                  → refunded here, the drawer opens
    face, paid online                     → `Payment.Refund` in the cloud, then recorded here
    face, paid offline, not yet synced    → recorded here and queued in the outbox ("outbox" path)
    face, paid offline, synced            → `Payment.Refund` (the cloud refunds the purchase its payment
                                            event booked); cloud unreachable → the outbox path
    face, paid offline, rejected by cloud → refused: the service desk decides (the member was never charged)

Offline refunds: the refund event (a `PaymentEvent` with `refund_of`) goes into the same "payments"
stream as the sale's payment event, so the cloud applies sale-then-refund in that order, and it carries
the refund id an online refund would use (``ref-<sale_id>``), on which the cloud's refund is idempotent —
a refund queued here and one made online later can never both apply. The local refund (the
`pos_refunds` row, the sale marked refunded, the points taken back, any open reconciliation item of the
sale closed, the audit entry and the outbox events) is one transaction: a process killed after it
loses nothing (the events go with the next push) and one killed before it refunded nothing.

Never twice: `pos_refunds` has one row per sale (the refund id is its key), checked inside the
transaction; never more than was paid: the refund is what was paid minus what was refunded, and the
cloud checks the same bound against its own ledger.
"""

from __future__ import annotations

import time
from typing import Any

from api.v1 import sync_pb2
from device.pos import store
from device.pos.audit import AuditLog
from device.pos.payment import PaymentError, PaymentGateway, PaymentOffline
from device.pos.receipt import sale_id_from_qr
from sync.outbox import enqueue


class RefundRefused(PaymentError):
    """A refund that must not happen here (not a receipt, unknown sale, already refunded, rejected sale)."""


def refund_id_of(sale_id: str) -> str:
    """The one refund id a sale can ever have (online and offline paths share it)."""
    return f"ref-{sale_id}"


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


def refund_by_qr(replica: Any, audit: AuditLog, gateway: PaymentGateway | None, code: str,
                 by: str = "cashier", store_id: str = "") -> dict[str, Any]:
    """Refund the sale a scanned receipt names; returns the refunded sale plus ``refund_cents``,
    ``refunded_at_ms`` and ``refund_path``. RefundRefused explains a no; PaymentOffline means an
    online-paid sale must wait for the cloud (nothing was changed). ``store_id`` (this device's store)
    is needed to queue the refund of an offline sale."""
    sale_id = sale_id_from_qr(code)
    if sale_id is None:
        raise _refused(audit, {"code": code[:120], "by": by},
                       "无法识别的二维码，请扫描小票底部的二维码 · this code is not a receipt QR; scan the QR at the "
                       "bottom of the receipt")
    sale = store.sale(replica, sale_id)
    if sale is None:
        raise _refused(audit, {"code": code[:120], "by": by},
                       "这张小票不是本机的销售单 · this receipt is not a sale of this device")
    entry = {"sale_id": sale_id, "by": by}
    if sale["status"] == "refunded":
        raise _refused(audit, entry, "此单已退款 · this sale was already refunded")
    amount = int(sale["paid_cents"]) - int(sale["refunded_cents"])
    if amount <= 0:
        raise _refused(audit, entry, "此单没有可退金额 · nothing was paid on this sale")
    refund_id = refund_id_of(sale_id)
    path = "cash" if sale["mode"] == "cash" else "online"
    if sale["mode"] == "offline":
        state = _sync_state(replica, sale["payment_event_id"])
        if state == "rejected":
            raise _refused(audit, entry, "云端未接受此离线支付，请到服务台处理 · the cloud did not accept this "
                                         "offline payment; the service desk handles it")
        path = "outbox" if state == "pending" or gateway is None else "online"
    if path == "online":
        if gateway is None:
            raise RefundRefused("无法连接云端 · the cloud is not configured; refunds of face payments need it")
        try:
            gateway.refund(refund_id, sale["payment_id"], amount)
        except PaymentOffline:
            if sale["mode"] != "offline":
                raise  # an online payment is refunded by the cloud only: try again when it is back
            path = "outbox"  # the sale is in the cloud already; the queued refund follows it
    if path == "outbox" and not store_id:
        raise RefundRefused("离线退款需要门店编号 · an offline refund needs this device's store id")
    return _record(replica, audit, sale, refund_id, amount, path, by, store_id)


def _record(replica: Any, audit: AuditLog, sale: dict[str, Any], refund_id: str, amount: int, path: str,
            by: str, store_id: str) -> dict[str, Any]:
    """The local refund, its events and its audit entry in one transaction."""
    now = int(time.time() * 1000)
    member, points = sale["member_id"], int(sale["points"])
    with replica.transaction() as conn:
        if conn.execute("SELECT 1 FROM pos_refunds WHERE sale_id = ?", (sale["sale_id"],)).fetchone():
            # Another scan won the race (the cloud's refund is idempotent on the id: nothing doubled).
            raise RefundRefused("此单已退款 · this sale was already refunded")
        event_id = None
        if path == "outbox":
            event_id = enqueue(conn, replica.cipher, "payment", sync_pb2.PaymentEvent(
                payment_id=refund_id, member_id=member, store_id=store_id, amount_cents=amount,
                offline=True, refund_of=sale["payment_id"]), now_ms=now)
        if member and points:
            ev = enqueue(conn, replica.cipher, "points", sync_pb2.PointsEvent(
                member_id=member, delta=-points, reason="退款扣回积分"), now_ms=now)
            conn.execute("INSERT INTO local_points VALUES (?, ?, ?, ?)", (ev, member, -points, now))
        conn.execute("INSERT INTO pos_refunds VALUES (?, ?, ?, ?, ?, ?)",
                     (refund_id, sale["sale_id"], amount, path, event_id, now))
        conn.execute("UPDATE pos_sales SET status = 'refunded', refunded_cents = refunded_cents + ? WHERE sale_id = ?",
                     (amount, sale["sale_id"]))
        # A coupon difference still to collect on this sale is moot once the whole sale is refunded.
        closed = conn.execute("UPDATE pos_reconciliation SET state = 'refunded', resolved_at_ms = ?, resolved_by = ?"
                              " WHERE sale_id = ? AND state = 'open'", (now, by, sale["sale_id"])).rowcount
        audit.append(conn, "refund", {"sale_id": sale["sale_id"], "refund_id": refund_id, "by": by,
                                      "mode": sale["mode"], "path": path, "event_id": event_id,
                                      "amount_cents": amount, "points": -points, "reconciliation_closed": closed},
                     now)
    out = store.sale(replica, sale["sale_id"])
    assert out is not None
    return out | {"refund_cents": amount, "refunded_at_ms": now, "refund_path": path}


"""Refunds by scanning the receipt's QR code: the whole sale, once.

Online face payments are refunded through the cloud (`Payment.Refund`, idempotent on the refund id
derived from the sale, so a second scan cannot refund twice); cash sales open the drawer. A sale
paid offline has no cloud payment to refund against, so it is refused here and sent to the service
desk. The member's points are taken back through the outbox, in the same transaction as the local
refund and its audit entry.
"""

from __future__ import annotations

import time
from typing import Any

from api.v1 import sync_pb2
from device.pos import store
from device.pos.audit import AuditLog
from device.pos.payment import PaymentError, PaymentGateway
from device.pos.receipt import sale_id_from_qr
from sync.outbox import enqueue


class RefundRefused(PaymentError):
    """A refund that must not happen here (unknown receipt, already refunded, paid offline)."""


def refund_by_qr(replica: Any, audit: AuditLog, gateway: PaymentGateway | None, code: str,
                 by: str = "cashier") -> dict[str, Any]:
    """Refund the sale a scanned receipt names; returns the refunded sale. RefundRefused explains a no."""
    sale_id = sale_id_from_qr(code)
    sale = store.sale(replica, sale_id) if sale_id else None
    if sale is None:
        audit.record("refund", {"code": code[:120], "by": by, "refused": "unknown receipt"})
        raise RefundRefused("这张小票不是本机的销售单 · this receipt is not a sale of this device")
    if sale["status"] == "refunded":
        raise RefundRefused("此单已退款 · this sale was already refunded")
    amount = int(sale["paid_cents"]) - int(sale["refunded_cents"])
    refund_id = f"ref-{sale['sale_id']}"
    if sale["mode"] == "offline":
        audit.record("refund", {"sale_id": sale["sale_id"], "by": by, "refused": "paid offline"})
        raise RefundRefused("离线刷脸支付的订单请到服务台退款 · offline face payments are refunded at the service desk")
    if sale["mode"] == "online":
        if gateway is None:
            raise RefundRefused("无法连接云端 · the cloud is not configured; refunds of face payments need it")
        gateway.refund(refund_id, sale["payment_id"], amount)  # PaymentOffline: try again when online
    now = int(time.time() * 1000)
    with replica.transaction() as conn:
        member, points = sale["member_id"], int(sale["points"])
        if member and points:
            ev = enqueue(conn, replica.cipher, "points", sync_pb2.PointsEvent(
                member_id=member, delta=-points, reason="退款扣回积分"), now_ms=now)
            conn.execute("INSERT INTO local_points VALUES (?, ?, ?, ?)", (ev, member, -points, now))
        conn.execute("UPDATE pos_sales SET status = 'refunded', refunded_cents = refunded_cents + ? WHERE sale_id = ?",
                     (amount, sale["sale_id"]))
        audit.append(conn, "refund", {"sale_id": sale["sale_id"], "refund_id": refund_id, "by": by,
                                      "mode": sale["mode"], "amount_cents": amount, "points": -points}, now)
    out = store.sale(replica, sale["sale_id"])
    assert out is not None
    return out | {"refund_cents": amount, "refunded_at_ms": now}

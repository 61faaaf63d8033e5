"""Receipts for π-POS sales and refunds, and reading a receipt's QR code back for a refund.

The QR code is the e-receipt link: ``RECEIPT_URL + sale_id``. Sale ids are random UUIDs, so the link
names a sale without being guessable; a refund scans it and looks the sale up on this device. The
receipt also prints the sale's audit anchor (the first characters of its audit-log hash), so a
receipt in the customer's hand can later prove the log was not cut (see device.pos.audit).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any

from device.greeting import mask_name
from drivers.printer.receipt import Receipt, ReceiptLine

RECEIPT_URL = "https://e.joycloud.example/r/"
STORE_TITLE = "悦云商城"
_QR_RE = re.compile(r"(?:^|/r/)(sale-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
_MODES = {"online": "刷脸支付", "offline": "刷脸支付(离线)", "cash": "现金"}


def yuan(cents: int) -> str:
    """12345 → "123.45"."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def qr_text(sale_id: str) -> str:
    """The e-receipt link printed as the receipt's QR code."""
    return RECEIPT_URL + sale_id


def sale_id_from_qr(text: str) -> str | None:
    """The sale id a scanned receipt QR names, or None when the code is not one of our receipts."""
    m = _QR_RE.search(text.strip())
    return m.group(1) if m else None


def sale_receipt(sale: dict[str, Any], *, device_id: str, store_id: str, member: dict[str, Any] | None = None,
                 tz: tzinfo | None = None) -> Receipt:
    """The customer's receipt of a sale."""
    when = datetime.fromtimestamp(sale["created_at_ms"] / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")
    lines = [ReceiptLine(i["name"], yuan(int(i["cents"]))) for i in sale["items"]]
    totals = [ReceiptLine("合计", yuan(sale["amount_cents"]))]
    if sale["discount_cents"]:
        totals.append(ReceiptLine("优惠券", yuan(-int(sale["discount_cents"]))))
    totals.append(ReceiptLine("实付 " + _MODES.get(sale["mode"], sale["mode"]), yuan(sale["paid_cents"])))
    header = [f"门店 {store_id}", f"设备 {device_id}", when]
    footer = []
    if member is not None:
        footer.append(f"会员 {mask_name(member.get('name', ''))}  尾号 {member.get('phone_last4', '')}")
    if sale["points"]:
        footer.append(f"刷脸积分 +{sale['points']}")
    footer += [f"单号 {sale['sale_id'][5:21]}", f"审计 {sale['anchor']}", "扫码查看电子小票 / 退款"]
    return Receipt(title=STORE_TITLE, lines=lines, header=header, totals=totals, footer=footer,
                   qr=qr_text(sale["sale_id"]))


def refund_receipt(sale: dict[str, Any], amount_cents: int, *, device_id: str, tz: tzinfo | None = None,
                   when_ms: int) -> Receipt:
    """The slip printed for a refund (``sale`` as `device.pos.refund.refund` returns it)."""
    when = datetime.fromtimestamp(when_ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")
    mode = _MODES.get(sale["mode"], sale["mode"])
    paid, refunded = int(sale["paid_cents"]), int(sale["refunded_cents"])
    lines = [ReceiptLine("原单号", sale["sale_id"][5:21])]
    for n in sale.get("refund_lines") or []:
        if 0 <= n < len(sale["items"]):
            lines.append(ReceiptLine("退货 " + sale["items"][n]["name"], yuan(int(sale["items"][n]["cents"]))))
    if refunded < paid or int(sale.get("refund_seq", 1)) > 1:
        totals = [ReceiptLine("部分退款 " + mode, "¥" + yuan(amount_cents)), ReceiptLine("已退", "¥" + yuan(refunded)),
                  ReceiptLine("剩余", "¥" + yuan(paid - refunded))]
    else:
        totals = [ReceiptLine("退款 " + mode, yuan(amount_cents))]
    if sale.get("clawback_cents"):
        totals.insert(1, ReceiptLine("券优惠扣回", yuan(-int(sale["clawback_cents"]))))
    points = int(sale.get("refund_points", sale.get("points", 0)) or 0)
    footer = [f"会员积分 -{points}"] if points else []
    footer += {"restored": ["优惠券已退回会员账户"], "expired": ["优惠券已过期，不退回"],
               "kept": ["优惠券仍为已使用"]}.get(sale.get("coupon", ""), [])
    footer += (["离线退款 联网后同步"] if sale.get("refund_path") == "outbox" else []) + ["请保留此凭证"]
    return Receipt(title="退款凭证", header=[f"设备 {device_id}", when], lines=lines, totals=totals, footer=footer)

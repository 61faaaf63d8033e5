"""View models of the π-POS screens (contract: kiosk_ui.pos_contract), built from the checkout.

The customer screen faces the shopper and anyone behind them: it shows the amounts, the masked name
once the face matched, and never the phone number, member id or scores. The cashier sees the same
plus the payment mode and the last refund. Messages are "中文 · English"; the pages pick a side.
"""

from __future__ import annotations

from typing import Any

from device.greeting import mask_name
from device.pos import reconcile as rec
from device.pos.checkout import Checkout
from device.pos.receipt import yuan

CHALLENGE_TEXT = {"blink": "请眨眨眼 · Please blink", "turn_left": "请向左转头 · Turn your head left",
                  "turn_right": "请向右转头 · Turn your head right", "open_mouth": "请张嘴 · Open your mouth"}


def _member_name(checkout: Checkout) -> str:
    if not checkout.member_id:
        return ""
    row = checkout.replica.member(checkout.member_id) or {}
    return mask_name(row.get("name", ""))


def _common(checkout: Checkout, offline: bool, device: str) -> dict[str, Any]:
    return {"state": checkout.state, "amount": yuan(checkout.amount_cents), "due": yuan(checkout.due_cents),
            "discount": yuan(checkout.discount_cents), "coupon": checkout.coupon["title"] if checkout.coupon else "",
            "member": _member_name(checkout), "message": checkout.message, "offline": offline, "device": device}


def customer_view(checkout: Checkout, *, offline: bool, device: str) -> dict[str, Any]:
    """The customer screen."""
    with checkout._lock:
        view = _common(checkout, offline, device)
        view["challenge"] = CHALLENGE_TEXT.get(checkout.challenge, "")
        sale = checkout.sale
        view["points"] = int(sale["points"]) if sale and checkout.state == "paid" else 0
        view["mode"] = sale["mode"] if sale and checkout.state == "paid" else ""
        if checkout.state == "phone":
            view["tries_left"] = max(0, 3 - checkout.phone_tries)
        return view


def cashier_view(checkout: Checkout, *, offline: bool, device: str, refund: str = "",
                 peripherals: str = "", reconcile: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The cashier screen; ``reconcile`` are the open reconciliation items (device.pos.reconcile)."""
    with checkout._lock:
        view = _common(checkout, offline, device)
        view["items"] = [{"name": i["name"], "amount": yuan(int(i["cents"]))} for i in checkout.items]
        if checkout.manual_cents:
            view["items"].append({"name": "金额 · Amount", "amount": yuan(checkout.manual_cents)})
        sale = checkout.sale
        view["mode"] = sale["mode"] if sale and checkout.state == "paid" else ""
        view["receipt"] = sale["sale_id"][5:21] if sale and checkout.state == "paid" else ""
        view["refund"] = refund
        view["peripherals"] = peripherals
        view["reconcile"] = [{"id": r["compensation_id"], "sale": (r["sale_id"] or "")[5:21],
                              "amount": yuan(int(r["amount_cents"])), "text": rec.text(r)} for r in reconcile or []]
        return view

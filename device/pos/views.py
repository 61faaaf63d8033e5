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


_COUPON_TEXT = {"restored": "优惠券已退回会员 · coupon returned to the member",
                "expired": "优惠券已过期，不退回 · coupon expired, not returned"}


def refund_text(sale: dict[str, Any]) -> str:
    """The cashier's line after a refund (``sale`` as device.pos.refund.refund returns it)."""
    paid, refunded = int(sale["paid_cents"]), int(sale["refunded_cents"])
    zh = (f"已退款 ¥{yuan(sale['refund_cents'])}" if refunded >= paid and sale["refund_seq"] == 1 else
          f"部分退款 ¥{yuan(sale['refund_cents'])} / 已退 ¥{yuan(refunded)} / 剩余 ¥{yuan(paid - refunded)}")
    en = f"refunded {yuan(sale['refund_cents'])} (total {yuan(refunded)}, left {yuan(paid - refunded)})"
    if sale["clawback_cents"]:
        zh += f"，券优惠扣回 ¥{yuan(sale['clawback_cents'])}"
        en += f", coupon discount kept back {yuan(sale['clawback_cents'])}"
    if sale["refund_path"] == "outbox":
        zh, en = zh + "（离线，联网后同步）", en + " (offline; reaches the cloud with the next sync)"
    coupon = _COUPON_TEXT.get(sale["coupon"])
    if coupon:
        zh, en = zh + "；" + coupon.split(" · ")[0], en + "; " + coupon.split(" · ")[1]
    return f"{zh} · {en}"


_PREVIEW_COUPON = {"restored": "优惠券将退回会员 · the coupon goes back to the member",
                   "expired": "优惠券已过期，不退回 · the coupon has expired: it is not given back"}
NO_PREVIEW: dict[str, Any] = {"basis": "", "key": "", "ok": False, "reason": "", "refund": "", "clawback": "",
                              "why": "", "coupon": "", "points": 0, "left": "", "hint": "", "hint_cents": 0}


def preview_view(basis: str, key: str, pv: dict[str, Any] | None) -> dict[str, Any]:
    """The refund preview box (``pv`` as device.pos.refund.preview returns it) for the cashier's input
    ``basis`` ("amount" | "lines") and ``key`` (the cents or the ticked lines, echoed so the page
    shows a preview only for what is on screen now)."""
    if pv is None or not basis:
        return dict(NO_PREVIEW)
    out = dict(NO_PREVIEW) | {"basis": basis, "key": key, "ok": bool(pv["ok"]), "reason": pv["reason"]}
    hint = pv["hint"]
    if hint:
        name, lst, share = hint["name"], yuan(hint["list_cents"]), yuan(hint["share_cents"])
        out["hint"] = (f"{name} 标价 ¥{lst}，按实付分摊应退 ¥{share} · {name}: list price {lst}, its share of "
                       f"what was paid is {share}")
        out["hint_cents"] = int(hint["share_cents"])
    if not pv["ok"]:
        return out
    out |= {"refund": yuan(pv["net_cents"]), "clawback": yuan(pv["clawback_cents"]), "points": int(pv["points"]),
            "left": yuan(pv["left_after_cents"])}
    if pv["retry"]:
        out["reason"] = "确认将重试上一笔未完成的退款 · confirming retries the unfinished refund"
    kept, threshold = yuan(pv["kept_list_cents"]), yuan(pv["threshold_cents"])
    if pv["clawback_cents"]:
        out["why"] = (f"留下的商品按标价 ¥{kept} 不满券门槛 ¥{threshold}，扣回其分摊的券优惠 · what is kept is worth "
                      f"{kept} at list price, below the coupon's {threshold} threshold: its share of the discount "
                      f"is kept back")
    if pv["coupon"] == "kept":
        out["coupon"] = (f"优惠券仍为已使用（留下的商品按标价 ¥{kept} 仍满门槛 ¥{threshold}） · the coupon stays used "
                         f"(what is kept, {kept} at list price, still meets the {threshold} threshold)"
                         if pv["threshold_cents"] else
                         "优惠券仍为已使用（无门槛券仅整单退款时退回） · the coupon stays used (a coupon without "
                         "threshold goes back only with a full refund)")
    else:
        out["coupon"] = _PREVIEW_COUPON.get(pv["coupon"], "")
    return out


def refunding_view(sale: dict[str, Any], preview: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sale open for a refund (device.pos.refund.open_sale) as the cashier screen shows it, with the
    preview box (`preview_view`; empty when None)."""
    pending = sale["pending"]
    return {"sale": sale["sale_id"], "receipt": sale["sale_id"][5:21], "mode": sale["mode"],
            "amount": yuan(int(sale["amount_cents"])), "discount": yuan(int(sale["discount_cents"])),
            "paid": yuan(int(sale["paid_cents"])), "refunded": yuan(int(sale["refunded_cents"])),
            "left": yuan(int(sale["left_cents"])), "left_cents": int(sale["left_cents"]),
            "seq": int(pending["seq"]) if pending else int(sale["next_seq"]),
            "pending": yuan(int(pending["amount_cents"])) if pending else "",
            "lines": [{"n": ln["n"], "name": ln["name"], "amount": yuan(ln["cents"]), "share": yuan(ln["share"]),
                       "returned": bool(ln["returned"])} for ln in sale["lines"]],
            "preview": preview if preview is not None else dict(NO_PREVIEW)}


def cashier_view(checkout: Checkout, *, offline: bool, device: str, refund: str = "",
                 peripherals: str = "", reconcile: list[dict[str, Any]] | None = None,
                 refunding: dict[str, Any] | None = None, preview: dict[str, Any] | None = None) -> dict[str, Any]:
    """The cashier screen; ``reconcile`` are the open reconciliation items (device.pos.reconcile),
    ``refunding`` the sale open for a refund (device.pos.refund.open_sale) or None, ``preview`` its
    refund preview (`preview_view`) or None."""
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
        if refunding is not None:
            view["refunding"] = refunding_view(refunding, preview)
        return view

"""The π-POS view-model and touch-action contracts: "pos-cashier" and "pos-customer".

View models (``publish`` validates them; unknown keys are refused, so nothing personal slips onto the
customer-facing screen by accident)::

    common  {"state": "idle" | "cart" | "face" | "phone" | "confirm" | "paying" | "paid" | "refused",
             "amount": "128.00", "due": "108.00", "discount": "20.00",   # yuan as text
             "coupon": "20元现金券", "member": "*建",                     # masked name, "" until matched
             "message": "中文 · English", "offline": false, "device": "pos-01", "mode": "online"|"offline"|"cash"|""}
    customer + {"challenge": "请向左转头 · Turn your head left", "points": 108, "tries_left": 2}
    cashier  + {"items": [{"name": "可乐", "amount": "3.50"}], "receipt": "3f2a…", "refund": "…",
                "peripherals": "printer ok",
                "degraded": "打印机未连接 · 请检查USB线",   # "" or absent when every peripheral is ok
                "reconcile": [{"id": "comp-…", "sale": "3f2a…", "amount": "30.00",   # open reconciliation items
                               "text": "券已在其他终端使用，差额 ¥30.00 待补收 · coupon already used …"}],
                "refunding": {"sale": "sale-…", "receipt": "3f2a…", "mode": "online", "amount": "300.00",   # absent
                              "discount": "30.00", "paid": "270.00", "refunded": "90.00", "left": "180.00",  # unless
                              "left_cents": 18000, "seq": 2, "pending": "",       # a receipt was scanned
                              "lines": [{"n": 0, "name": "衬衫", "amount": "100.00", "share": "90.00",
                                         "returned": true}],
                              "preview": {"basis": "lines", "key": "1", "ok": true,   # what confirming would do
                                          "reason": "", "refund": "51.67", "clawback": "16.67",   # ("basis": ""
                                          "why": "留下的商品…不满券门槛… · …", "coupon": "…",          #  = nothing
                                          "points": 78, "left": "100.00", "hint": "", "hint_cents": 0}}}

Touch actions (``POST /api/<view>/action``, exact fields)::

    pos-cashier   {"action": "amount", "cents": 12800}  {"action": "scan", "code": "6901234567892"}
                  {"action": "cash"}  {"action": "new"}  {"action": "refund", "code": "<receipt QR text>"}
                  {"action": "collect", "id": "<reconciliation item id>"}   # the difference was collected
                  {"action": "refund_amount", "sale": "<sale id>", "cents": 9000, "seq": 2}   # refund seq of
                  {"action": "refund_lines", "sale": "<sale id>", "lines": "0,2", "seq": 2}   # the open sale
                  {"action": "refund_preview_amount", "sale": "<sale id>", "cents": 9000, "seq": 2}   # what
                  {"action": "refund_preview_lines", "sale": "<sale id>", "lines": "0,2", "seq": 2}   # would happen
                  {"action": "refund_close"}
    pos-customer  {"action": "face"}  {"action": "phone", "digits": "1234"}  {"action": "confirm"}
                  {"action": "cancel"}
"""

from __future__ import annotations

from typing import Any, Final

from kiosk_ui.errors import KioskError

POS_VIEWS: Final = ("pos-cashier", "pos-customer")
POS_STATES: Final = ("idle", "cart", "face", "phone", "confirm", "paying", "paid", "refused")
_COMMON: Final = {"state": str, "amount": str, "due": str, "discount": str, "coupon": str, "member": str,
                  "message": str, "offline": bool, "device": str, "mode": str}
_KEYS: Final = {
    "pos-customer": _COMMON | {"challenge": str, "points": int, "tries_left": int},
    "pos-cashier": _COMMON | {"items": list, "receipt": str, "refund": str, "peripherals": str, "degraded": str,
                              "reconcile": list, "refunding": dict},
}
POS_ACTIONS: Final[dict[str, dict[str, dict[str, type]]]] = {
    "pos-cashier": {"amount": {"cents": int}, "scan": {"code": str}, "cash": {}, "new": {},
                    "refund": {"code": str}, "collect": {"id": str},
                    "refund_amount": {"sale": str, "cents": int, "seq": int},
                    "refund_lines": {"sale": str, "lines": str, "seq": int}, "refund_close": {},
                    "refund_preview_amount": {"sale": str, "cents": int, "seq": int},
                    "refund_preview_lines": {"sale": str, "lines": str, "seq": int}},
    "pos-customer": {"face": {}, "phone": {"digits": str}, "confirm": {}, "cancel": {}},
}
MAX_FIELD = 512
_RECONCILE_KEYS: Final = frozenset({"id", "sale", "amount", "text"})
_REFUNDING: Final = {"sale": str, "receipt": str, "mode": str, "amount": str, "discount": str, "paid": str,
                     "refunded": str, "left": str, "left_cents": int, "seq": int, "pending": str, "lines": list,
                     "preview": dict}
_REFUND_LINE: Final = {"n": int, "name": str, "amount": str, "share": str, "returned": bool}
_PREVIEW: Final = {"basis": str, "key": str, "ok": bool, "reason": str, "refund": str, "clawback": str, "why": str,
                   "coupon": str, "points": int, "left": str, "hint": str, "hint_cents": int}


def _exact(view: str, where: str, value: Any, keys: dict[str, type]) -> None:
    if not isinstance(value, dict) or set(value) != set(keys):
        raise KioskError(f"{view} view model: {where} must have exactly {sorted(keys)}")
    for key, kind in keys.items():
        _typed(view, f"{where}.{key}", value[key], kind)


def _typed(view: str, where: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KioskError(f"{view} view model: {where} must be {kind.__name__}, got {value!r}")


def validate_pos_model(view: str, model: Any) -> None:
    """Raise KioskError unless ``model`` keeps exactly to the contract of ``view``."""
    if not isinstance(model, dict):
        raise KioskError(f"{view} view model must be a dict, got {type(model).__name__}")
    if model.get("state") not in POS_STATES:
        raise KioskError(f"{view} view model: state must be one of {POS_STATES}, got {model.get('state')!r}")
    keys = _KEYS[view]
    unknown = sorted(set(model) - set(keys))
    if unknown:
        raise KioskError(f"{view} view model: keys {unknown} are not part of the contract")
    for key, value in model.items():
        _typed(view, key, value, keys[key])
    for i, item in enumerate(model.get("items", [])):
        if not isinstance(item, dict) or set(item) != {"name", "amount"}:
            raise KioskError(f"{view} view model: items[{i}] must be {{'name': str, 'amount': str}}")
        _typed(view, f"items[{i}].name", item["name"], str)
        _typed(view, f"items[{i}].amount", item["amount"], str)
    for i, item in enumerate(model.get("reconcile", [])):
        if not isinstance(item, dict) or set(item) != _RECONCILE_KEYS:
            raise KioskError(f"{view} view model: reconcile[{i}] must have exactly {sorted(_RECONCILE_KEYS)}")
        for key in _RECONCILE_KEYS:
            _typed(view, f"reconcile[{i}].{key}", item[key], str)
    if "refunding" in model:
        _exact(view, "refunding", model["refunding"], _REFUNDING)
        for i, line in enumerate(model["refunding"]["lines"]):
            _exact(view, f"refunding.lines[{i}]", line, _REFUND_LINE)
        _exact(view, "refunding.preview", model["refunding"]["preview"], _PREVIEW)
        if model["refunding"]["preview"]["basis"] not in ("", "amount", "lines"):
            raise KioskError(f"{view} view model: refunding.preview.basis must be '', 'amount' or 'lines'")


def validate_pos_action(view: str, action: Any) -> dict[str, Any]:
    """The action, checked against POS_ACTIONS; KioskError when it is not one of them."""
    if not isinstance(action, dict) or not isinstance(action.get("action"), str):
        raise KioskError('an action must be a JSON object with a string "action"')
    fields = POS_ACTIONS[view].get(action["action"])
    if fields is None:
        raise KioskError(f"unknown {view} action {action['action']!r}: expected one of {', '.join(POS_ACTIONS[view])}")
    given = set(action) - {"action"}
    if given != set(fields):
        raise KioskError(f"{view} action {action['action']!r} takes exactly {sorted(fields) or 'no fields'}")
    for key, kind in fields.items():
        value = action[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise KioskError(f"{view} action {action['action']!r}: {key} must be {kind.__name__}")
        if isinstance(value, str) and not 0 < len(value) <= MAX_FIELD:
            raise KioskError(f"{view} action {action['action']!r}: {key} must be 1..{MAX_FIELD} characters")
        if isinstance(value, int) and not 0 <= value <= 100_000_000:
            raise KioskError(f"{view} action {action['action']!r}: {key} out of range")
    return action

"""The mirror view-model and touch-action contracts (documented in kiosk_ui.server's docstring).

Refusing, not ignoring, is the point: a welcome model carrying "tier" would put personal data
on the glass of a public mirror, and an action the device does not know must not reach it.
"""

from __future__ import annotations

import re
from typing import Any, Final

from kiosk_ui.errors import KioskError

_COMMON_KEYS = {"state": str, "offline": bool, "device": str, "degraded": str}
_MIRROR_KEYS: Final[dict[str, dict[str, type]]] = {
    "attract": {},
    "welcome": {"greeting": str, "message": str, "greeting_en": str, "message_en": str, "content": dict,
                "can_enroll": bool},
    "member": {
        "greeting": str, "tier": str, "points": int, "tier_keep_points": int, "coupons": list,
        "stars": int, "visit_cycle": str, "greeting_en": str, "card": str, "find_car": dict, "can_enroll": bool,
    },
    "enroll": {
        "step": str, "greeting": str, "greeting_en": str, "consent": dict, "enrolled": bool,
        "prompt": str, "prompt_en": str, "progress": int, "liveness_done": int, "liveness_total": int,
        "message": str, "message_en": str,
    },
    # A match the gallery's size makes too weak to greet on the face alone: a neutral greeting and a keypad
    # for the phone's last four digits. Nothing of the member row may ride along (unknown keys are refused).
    "confirm": {
        "greeting": str, "greeting_en": str, "message": str, "message_en": str, "card": str, "tries_left": int,
        "error": str, "error_en": str,
    },
}
_MIRROR_REQUIRED: Final = {
    "attract": set(),
    "welcome": {"greeting"},
    "member": {"greeting", "tier", "points", "tier_keep_points", "coupons"},
    "enroll": {"step"},
    "confirm": {"greeting", "message", "card", "tries_left"},
}
CONFIRM_MAX_TRIES: Final = 3  # tries_left is 1..CONFIRM_MAX_TRIES
ENROLL_STEPS: Final = ("scan", "consent", "capture", "done", "failed", "withdrawn")
FIND_CAR_STATUSES: Final = ("searching", "found", "none", "offline", "error")
_CONTENT_KEYS: Final = {"id": str, "title": str, "body": str, "title_en": str, "body_en": str}
_CONSENT_KEYS: Final = {"version": str, "text": str, "text_en": str}
_FIND_CAR_KEYS: Final = {"status": str, "cars": list, "message": str, "message_en": str}
_CAR_KEYS: Final = {"plate": str, "bay": str}
CAPTURE_FRAMES: Final = 3  # enroll "progress" counts good frames, 0..CAPTURE_FRAMES

#: Touch actions the mirror page may send (POST /api/mirror/action), with their fields.
#: "card" names the member card the tap was made on, so a tap on a card that has just been
#: replaced (another shopper stepped in) is refused by the device instead of acting on somebody else.
MIRROR_ACTIONS: Final[dict[str, dict[str, type]]] = {
    "find_car": {"card": str},
    "not_me": {"card": str},
    "enroll_start": {},
    "consent_agree": {"version": str},
    "consent_decline": {},
    "withdraw": {},
    "retry": {},
    "cancel": {},
    "confirm_phone": {"card": str, "digits": str},
    "confirm_skip": {"card": str},
}
MAX_ACTION_FIELD = 200
# Fields with a fixed shape. The refusal never repeats the value: the digits are a second factor.
_ACTION_FORMATS: Final = {("confirm_phone", "digits"): (re.compile(r"[0-9]{4}"), "exactly 4 digits 0-9")}


def _check_type(where: str, value: Any, kind: type) -> None:
    # bool is an int in Python, but True points or stars are a device bug, not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KioskError(f"mirror view model: {where} must be {kind.__name__}, got {value!r}")


def _check_dict(where: str, value: Any, keys: dict[str, type], required: set[str]) -> None:
    if not isinstance(value, dict):
        raise KioskError(f"mirror view model: {where} must be a dict, got {value!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise KioskError(f"mirror view model: {where} has unknown keys {unknown}")
    missing = sorted(required - set(value))
    if missing:
        raise KioskError(f"mirror view model: {where} needs {missing}")
    for key, item in value.items():
        _check_type(f"{where}.{key}", item, keys[key])


def validate_mirror_model(model: Any) -> None:
    """Raise KioskError unless ``model`` keeps exactly to the mirror contract in server.py's docstring."""
    if not isinstance(model, dict):
        raise KioskError(f"mirror view model must be a dict, got {type(model).__name__}")
    state = model.get("state")
    if state not in _MIRROR_KEYS:
        raise KioskError(f"mirror view model: state must be one of {sorted(_MIRROR_KEYS)}, got {state!r}")
    allowed = _COMMON_KEYS | _MIRROR_KEYS[state]
    unknown = sorted(set(model) - set(allowed))
    if unknown:
        # Refusing, not ignoring: a welcome model carrying "tier" would leak personal data onto the glass.
        raise KioskError(f"mirror view model: keys {unknown} are not part of the {state!r} state")
    missing = sorted(_MIRROR_REQUIRED[state] - set(model))
    if missing:
        raise KioskError(f"mirror view model: the {state!r} state needs {missing}")
    for key, value in model.items():
        _check_type(key, value, allowed[key])
    if state == "member":
        _check_member(model)
    elif state == "welcome" and "content" in model:
        _check_dict("content", model["content"], _CONTENT_KEYS, {"id", "title", "body"})
    elif state == "enroll":
        _check_enroll(model)
    elif state == "confirm" and not 1 <= model["tries_left"] <= CONFIRM_MAX_TRIES:
        raise KioskError(f"mirror view model: tries_left must be 1..{CONFIRM_MAX_TRIES}, got {model['tries_left']}")


def _check_member(model: dict[str, Any]) -> None:
    for i, coupon in enumerate(model["coupons"]):
        if not isinstance(coupon, dict) or set(coupon) != {"title", "hint"}:
            raise KioskError(f"mirror view model: coupons[{i}] must be {{'title': str, 'hint': str}}")
        _check_type(f"coupons[{i}].title", coupon["title"], str)
        _check_type(f"coupons[{i}].hint", coupon["hint"], str)
    if "stars" in model and not 0 <= model["stars"] <= 5:
        raise KioskError(f"mirror view model: stars must be 0..5, got {model['stars']}")
    if "find_car" in model:
        fc = model["find_car"]
        _check_dict("find_car", fc, _FIND_CAR_KEYS, {"status"})
        if fc["status"] not in FIND_CAR_STATUSES:
            raise KioskError(f"mirror view model: find_car.status must be one of {FIND_CAR_STATUSES}")
        for i, car in enumerate(fc.get("cars", [])):
            _check_dict(f"find_car.cars[{i}]", car, _CAR_KEYS, {"bay"})


def _check_enroll(model: dict[str, Any]) -> None:
    if model["step"] not in ENROLL_STEPS:
        raise KioskError(f"mirror view model: enroll step must be one of {ENROLL_STEPS}, got {model['step']!r}")
    if "consent" in model:
        _check_dict("consent", model["consent"], _CONSENT_KEYS, {"version", "text"})
    if model["step"] == "consent" and "consent" not in model:
        raise KioskError("mirror view model: the consent step needs the versioned consent text")
    if not 0 <= model.get("progress", 0) <= CAPTURE_FRAMES:
        raise KioskError(f"mirror view model: progress must be 0..{CAPTURE_FRAMES}")
    if not 0 <= model.get("liveness_done", 0) <= model.get("liveness_total", 0) <= 8:
        raise KioskError("mirror view model: liveness_done must be 0..liveness_total (at most 8)")


def validate_action(view: str, action: Any) -> dict[str, Any]:
    """The touch action posted by a page of ``view``, checked; raises KioskError when it is not one.

    Mirror actions must match MIRROR_ACTIONS exactly. The π-POS views define theirs in their own
    contract; until then any object with a string "action" passes (shape only).
    """
    if not isinstance(action, dict) or not isinstance(action.get("action"), str):
        raise KioskError('an action must be a JSON object with a string "action"')
    if view != "mirror":
        return action
    name = action["action"]
    fields = MIRROR_ACTIONS.get(name)
    if fields is None:
        raise KioskError(f"unknown mirror action {name!r}: expected one of {', '.join(MIRROR_ACTIONS)}")
    given = set(action) - {"action"}
    if given != set(fields):
        raise KioskError(f"mirror action {name!r} takes exactly {sorted(fields) or 'no fields'}, got {sorted(given)}")
    for key, kind in fields.items():
        value = action[key]
        if not isinstance(value, kind) or (isinstance(value, str) and not 0 < len(value) <= MAX_ACTION_FIELD):
            raise KioskError(f"mirror action {name!r}: {key} must be a non-empty {kind.__name__} "
                             f"of at most {MAX_ACTION_FIELD} characters")
        fmt = _ACTION_FORMATS.get((name, key))
        if fmt is not None and not fmt[0].fullmatch(value):
            raise KioskError(f"mirror action {name!r}: {key} must be {fmt[1]}")
    return action

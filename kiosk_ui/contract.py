"""The mirror view-model contract (documented in kiosk_ui.server's docstring), checked on publish.

Refusing, not ignoring, is the point: a welcome model carrying "tier" would put personal data
on the glass of a public mirror.
"""

from __future__ import annotations

from typing import Any, Final

from kiosk_ui.errors import KioskError

_COMMON_KEYS = {"state": str, "offline": bool, "device": str}
_MIRROR_KEYS: Final[dict[str, dict[str, type]]] = {
    "attract": {},
    "welcome": {"greeting": str, "message": str},
    "member": {
        "greeting": str, "tier": str, "points": int, "tier_keep_points": int, "coupons": list,
        "stars": int, "visit_cycle": str,
    },
}
_MIRROR_REQUIRED: Final = {
    "attract": set(),
    "welcome": {"greeting"},
    "member": {"greeting", "tier", "points", "tier_keep_points", "coupons"},
}


def _check_type(where: str, value: Any, kind: type) -> None:
    # bool is an int in Python, but True points or stars are a device bug, not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise KioskError(f"mirror view model: {where} must be {kind.__name__}, got {value!r}")


def validate_mirror_model(model: Any) -> None:
    """Raise KioskError unless ``model`` keeps exactly to the mirror contract in this module's docstring."""
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
        for i, coupon in enumerate(model["coupons"]):
            if not isinstance(coupon, dict) or set(coupon) != {"title", "hint"}:
                raise KioskError(f"mirror view model: coupons[{i}] must be {{'title': str, 'hint': str}}")
            _check_type(f"coupons[{i}].title", coupon["title"], str)
            _check_type(f"coupons[{i}].hint", coupon["hint"], str)
        if "stars" in model and not 0 <= model["stars"] <= 5:
            raise KioskError(f"mirror view model: stars must be 0..5, got {model['stars']}")

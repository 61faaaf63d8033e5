"""The mirror's view models: masked name, greeting by local time, tier, points, coupons.

Only what a member would be comfortable seeing on a public mirror: the surname is masked, the
phone number is never shown, and an unknown face gets a neutral welcome with nothing about it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sync.replica import Replica

# Two-character surnames that must be masked as a whole (欧阳娜娜 → *娜娜, not *阳娜娜).
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 西门 南宫 独孤 端木 轩辕".split()
)
COUPON_HINT_DEFAULT = "打开小程序卡包出示给收银员"


def mask_name(name: str) -> str:
    """Replace the surname with '*': 王建 → *建, 欧阳娜娜 → *娜娜; Latin names keep an initial."""
    name = name.strip()
    if not name:
        return "*"
    if name.isascii():
        parts = name.split()
        return f"{parts[0][0]}. *" if len(parts) > 1 else f"{name[0]}*"
    cut = 2 if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else 1
    return "*" + name[cut:] if len(name) > cut else "*"


def time_greeting(now: datetime) -> str:
    """早上好 (05–11), 中午好 (11–13), 下午好 (13–18), 晚上好 otherwise."""
    h = now.hour
    if 5 <= h < 11:
        return "早上好"
    if 11 <= h < 13:
        return "中午好"
    if 13 <= h < 18:
        return "下午好"
    return "晚上好"


def time_greeting_en(now: datetime) -> str:
    """The English switch's greeting, same hours as `time_greeting`."""
    h = now.hour
    if 5 <= h < 11:
        return "Good morning"
    if 11 <= h < 13:
        return "Good day"
    if 13 <= h < 18:
        return "Good afternoon"
    return "Good evening"


def attract_view() -> dict[str, Any]:
    """Nobody in front of the mirror."""
    return {"state": "attract"}


def welcome_view(now: datetime) -> dict[str, Any]:
    """A neutral welcome for a face that is not a consenting member."""
    return {"state": "welcome", "greeting": f"欢迎光临，{time_greeting(now)}！", "message": "祝您购物愉快"}


def member_view(replica: Replica, member_id: str, store_id: str, now: datetime) -> dict[str, Any] | None:
    """The member card, or None when the member vanished from the replica (deleted meanwhile)."""
    member = replica.member(member_id)
    if member is None:
        return None
    tags = replica.tags(member_id, now_ms=int(now.timestamp() * 1000))
    coupons = replica.usable_coupons(member_id, store_id, now_ms=int(now.timestamp() * 1000))
    view: dict[str, Any] = {
        "state": "member",
        "greeting": f"{mask_name(member['name'])}，{time_greeting(now)}！",
        "greeting_en": f"{time_greeting_en(now)}, {mask_name(member['name'])}!",
        "tier": member["tier"],
        "points": int(member["points"]),
        "tier_keep_points": int(member["tier_keep_points"]),
        "coupons": [{"title": c["title"], "hint": c["usage_hint"] or COUPON_HINT_DEFAULT} for c in coupons],
    }
    stars = tags.get("spending_stars")
    if stars and stars.isdigit():
        view["stars"] = max(0, min(5, int(stars)))
    cycle = tags.get("visit_cycle")
    if cycle:
        view["visit_cycle"] = f"{cycle} 次/月"
    return view

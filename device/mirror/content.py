"""What an anonymous shopper sees: campaign content chosen by age band and gender, nothing kept.

The rules are a small table on the device. The built-in table below is the fallback; a site's own
table comes from the cloud's marketing team as a signed config bundle (`joyedge bundle install`),
installed as ``content_rules.json`` beside the device config, and is read when the app starts::

    {"version": "2025-06", "rules": [
        {"id": "spring-women", "campaign_id": "cmp-12", "title": "春季女装新品", "body": "会员满300减30",
         "title_en": "Spring collection", "body_en": "Members: 30 off 300",
         "age_bands": ["18-60"], "genders": ["female"], "priority": 10,
         "valid_from_ms": 0, "valid_until_ms": 0}]}

A rule matches when the shopper's age band and gender are in its lists (an empty list matches
anything); the most specific match wins (both lists set, then one), then the highest priority, then
the rule id. The chosen rule is only shown: the attributes it was chosen by are dropped at once
(they reach the traffic counters only as hourly totals).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.errors import DeviceError

AGE_BANDS = ("<18", "18-60", ">60")
GENDERS = ("female", "male")
RULES_FILE = "content_rules.json"
_FIELDS = {"id": str, "campaign_id": str, "title": str, "body": str, "title_en": str, "body_en": str,
           "age_bands": list, "genders": list, "priority": int, "valid_from_ms": int, "valid_until_ms": int}
_REQUIRED = {"id", "title", "body"}


@dataclass(frozen=True)
class ContentRule:
    """One piece of content and who it is for."""

    id: str
    title: str
    body: str
    title_en: str = ""
    body_en: str = ""
    campaign_id: str = ""
    age_bands: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    priority: int = 0
    valid_from_ms: int = 0
    valid_until_ms: int = 0  # 0 = no end

    def matches(self, age_band: str | None, gender: str | None, now_ms: int) -> bool:
        """Is this rule for a shopper of this age band and gender, now?"""
        if now_ms < self.valid_from_ms or (self.valid_until_ms and now_ms >= self.valid_until_ms):
            return False
        if self.age_bands and age_band not in self.age_bands:
            return False
        return not (self.genders and gender not in self.genders)

    def view(self) -> dict[str, str]:
        """The "content" of a welcome view model."""
        out = {"id": self.id, "title": self.title, "body": self.body}
        if self.title_en:
            out["title_en"] = self.title_en
        if self.body_en:
            out["body_en"] = self.body_en
        return out


DEFAULT_RULES: tuple[ContentRule, ...] = (
    ContentRule("women-new-season", "当季女装新品", "会员满300减30，刷脸即享积分",
                "New season for women", "Members save 30 on 300", age_bands=("18-60",), genders=("female",)),
    ContentRule("men-sports", "男士运动系列", "会员日全场9折", "Men's sportswear",
                "10% off on member day", age_bands=("18-60",), genders=("male",)),
    ContentRule("kids-weekend", "亲子乐园周末活动", "三楼儿童区，周末亲子手工课", "Family weekend",
                "Craft classes for kids, 3F, weekends", age_bands=("<18",)),
    ContentRule("silver-tuesday", "银发会员日", "每周二消费双倍积分", "Silver Tuesday",
                "Double points every Tuesday", age_bands=(">60",)),
    ContentRule("join-joy", "加入悦云会员", "开通刷脸，积分与专属优惠自动到账", "Join Joy Cloud",
                "Points and member offers, just by your face", priority=-1),
)


def choose(rules: Sequence[ContentRule], age_band: str | None, gender: str | None, now_ms: int) -> ContentRule | None:
    """The rule to show this shopper (see the module docstring for the order), or None."""
    matching = [r for r in rules if r.matches(age_band, gender, now_ms)]
    if not matching:
        return None
    return min(matching, key=lambda r: (-(bool(r.age_bands) + bool(r.genders)), -r.priority, r.id))


def parse_rules(data: Any, where: str) -> tuple[ContentRule, ...]:
    """A rule table from its JSON form; DeviceError naming the rule and field when it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise DeviceError(f'{where}: expected {{"version": ..., "rules": [...]}}')
    out = []
    for i, raw in enumerate(data["rules"]):
        at = f"{where}: rules[{i}]"
        if not isinstance(raw, dict):
            raise DeviceError(f"{at} is not an object")
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise DeviceError(f"{at}: unknown keys {unknown}")
        missing = sorted(_REQUIRED - set(raw))
        if missing:
            raise DeviceError(f"{at}: missing {missing}")
        for key, value in raw.items():
            if not isinstance(value, _FIELDS[key]) or isinstance(value, bool):
                raise DeviceError(f"{at}.{key} must be {_FIELDS[key].__name__}")
        bad = [b for b in raw.get("age_bands", []) if b not in AGE_BANDS] + \
              [g for g in raw.get("genders", []) if g not in GENDERS]
        if bad:
            raise DeviceError(f"{at}: unknown age band or gender {bad} (age bands {AGE_BANDS}, genders {GENDERS})")
        out.append(ContentRule(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
    return tuple(out)


def load_rules(path: Path | None) -> tuple[ContentRule, ...]:
    """The site's table from ``path`` when that file exists, else the built-in DEFAULT_RULES."""
    if path is None or not path.is_file():
        return DEFAULT_RULES
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DeviceError(f"content rules {path} cannot be read: {err}; reinstall the config bundle") from err
    return parse_rules(data, str(path))

"""The operator's tag rules, exactly, as vectorised functions over per-member aggregates.

Every function takes numpy arrays (one entry per member) and returns an array of labels, so the
same code tags one member in a test and 100,000 in the nightly run. Boundaries (days are whole
days since the last purchase, `floor((as_of - last) / 1 day)`):

    R  activity   活跃客户 d < 90 · 沉默客户 90 ≤ d < 180 · 睡眠客户 180 ≤ d ≤ 360 · 流失客户 d > 360
    F  frequency  新客户 1 purchase · 老客户 2 · 成熟客户 3 · 忠诚客户 > 3
    M  monetary   member's average ticket a against the population's average ticket A (all purchases):
                  低贡献客户 a < ½A · 中贡献客户 ½A ≤ a < A · 中高贡献客户 A ≤ a < 2A · 高贡献客户 a ≥ 2A
    RFM           each of R, F, M is high (1) when strictly better than the population mean —
                  R: fewer days since the last purchase, F: more purchases, M: more total spend —
                  and low (0) otherwise (a tie is low); the code R F M names one of 8 segments.

Comparisons with averages are done in exact integer arithmetic (a/b < c/d ⇔ a·d < c·b), so a member
exactly at ½× or 2× the average ticket falls on the documented side, never on a rounding error.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

DAY_MS = 24 * 3600 * 1000

ACTIVE, SILENT, SLEEPING, LOST = "活跃客户", "沉默客户", "睡眠客户", "流失客户"
#: R boundaries in whole days: active < 90 ≤ silent < 180 ≤ sleeping ≤ 360 < lost.
R_SILENT_DAYS, R_SLEEPING_DAYS, R_LOST_AFTER_DAYS = 90, 180, 360
F_LABELS = {1: "新客户", 2: "老客户", 3: "成熟客户"}
F_LOYAL = "忠诚客户"
M_LOW, M_MID, M_MIDHIGH, M_HIGH = "低贡献客户", "中贡献客户", "中高贡献客户", "高贡献客户"
RFM_SEGMENTS = {
    "111": "重要价值客户", "011": "重要保持客户", "101": "重要发展客户", "001": "重要挽留客户",
    "110": "一般价值客户", "010": "一般保持客户", "100": "一般发展客户", "000": "一般挽留客户",
}
LIFECYCLE_ACQUISITION, LIFECYCLE_BUILDUP, LIFECYCLE_CLIMAX = "引入期", "成长期", "成熟期"
LIFECYCLE_DECLINE, LIFECYCLE_EXIT = "衰退期", "流失期"
GENDER_LABELS = {"F": "女", "M": "男"}
ZODIAC = [  # (month, first day of the sign in that month, sign starting then)
    (1, 20, "水瓶座"), (2, 19, "双鱼座"), (3, 21, "白羊座"), (4, 20, "金牛座"), (5, 21, "双子座"),
    (6, 22, "巨蟹座"), (7, 23, "狮子座"), (8, 23, "处女座"), (9, 23, "天秤座"), (10, 24, "天蝎座"),
    (11, 23, "射手座"), (12, 22, "摩羯座"),
]


def _obj(a: np.ndarray) -> np.ndarray:
    """Python-int object array: products of large sums cannot overflow int64."""
    return np.asarray(a).astype(object)


def recency_days(last_ms: np.ndarray, as_of_ms: int) -> np.ndarray:
    """Whole days between each last purchase and `as_of_ms` (0 for a purchase later than as_of)."""
    return np.maximum(0, (as_of_ms - np.asarray(last_ms, dtype=np.int64)) // DAY_MS)


def r_labels(days: np.ndarray) -> np.ndarray:
    """R: activity label from days since the last purchase."""
    d = np.asarray(days)
    return np.select(
        [d < R_SILENT_DAYS, d < R_SLEEPING_DAYS, d <= R_LOST_AFTER_DAYS], [ACTIVE, SILENT, SLEEPING], LOST
    ).astype(object)


def f_labels(count: np.ndarray) -> np.ndarray:
    """F: frequency label from the number of purchases (≥ 1)."""
    n = np.asarray(count)
    return np.select([n == 1, n == 2, n == 3], [F_LABELS[1], F_LABELS[2], F_LABELS[3]], F_LOYAL).astype(object)


def m_labels(spend: np.ndarray, count: np.ndarray, total_spend: int, total_count: int) -> np.ndarray:
    """M: monetary label from the member's average ticket against the population's (exact)."""
    s, n = _obj(spend), _obj(count)
    lhs = s * int(total_count)          # a·N·n  compared with  k·A·N·n = k·S·n
    base = n * int(total_spend)
    return np.select(
        [2 * lhs < base, lhs < base, lhs < 2 * base], [M_LOW, M_MID, M_MIDHIGH], M_HIGH
    ).astype(object)


def rfm_codes(days: np.ndarray, count: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """Three-character codes R F M ('1' = strictly better than the population mean)."""
    population = len(days)
    if population == 0:
        return np.array([], dtype=object)
    d, n, s = _obj(days), _obj(count), _obj(spend)
    r_hi = d * population < int(np.sum(d))
    f_hi = n * population > int(np.sum(n))
    m_hi = s * population > int(np.sum(s))
    return np.array(
        [f"{int(a)}{int(b)}{int(c)}" for a, b, c in zip(r_hi, f_hi, m_hi, strict=True)], dtype=object
    )


def rfm_labels(codes: np.ndarray) -> np.ndarray:
    """The 8 RFM segment names of codes from `rfm_codes`."""
    return np.array([RFM_SEGMENTS[c] for c in codes], dtype=object)


def lifecycle_labels(days: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Lifecycle stage: exit when lost, decline when silent or sleeping, else by purchases
    (≤ 1 acquisition, 2–3 build-up, > 3 climax). Members without a purchase are in acquisition."""
    d, n = np.asarray(days), np.asarray(count)
    return np.select(
        [n <= 0, d > R_LOST_AFTER_DAYS, d >= R_SILENT_DAYS, n <= 1, n <= 3],
        [LIFECYCLE_ACQUISITION, LIFECYCLE_EXIT, LIFECYCLE_DECLINE, LIFECYCLE_ACQUISITION, LIFECYCLE_BUILDUP],
        LIFECYCLE_CLIMAX,
    ).astype(object)


def generation(birthday: str) -> str:
    """60后 … 10后 from a YYYY-MM-DD birthday ('' when unknown); 60前 before 1960, 20后 from 2020."""
    if len(birthday) < 4 or not birthday[:4].isdigit():
        return ""
    year = int(birthday[:4])
    if year < 1960:
        return "60前"
    if year >= 2020:
        return "20后"
    return f"{year % 100 // 10 * 10:02d}后"


def zodiac(birthday: str) -> str:
    """Western zodiac sign (星座) of a YYYY-MM-DD birthday ('' when unknown)."""
    try:
        day = dt.date.fromisoformat(birthday)
    except ValueError:
        return ""
    sign = "摩羯座"  # before 1-20 the sign that started on 12-22
    for month, first, name in ZODIAC:
        if (day.month, day.day) >= (month, first):
            sign = name
    return sign


def age_years(birthday: str, as_of: dt.date) -> int | None:
    """Completed years of age on `as_of`, or None when the birthday is unknown."""
    try:
        day = dt.date.fromisoformat(birthday)
    except ValueError:
        return None
    return as_of.year - day.year - ((as_of.month, as_of.day) < (day.month, day.day))


def life_stage(age: int | None) -> str:
    """Life stage by age: 少年 < 18 ≤ 青年 < 30 ≤ 成家 < 45 ≤ 中年 < 60 ≤ 银发 ('' when unknown)."""
    if age is None:
        return ""
    for limit, label in ((18, "少年"), (30, "青年"), (45, "成家"), (60, "中年")):
        if age < limit:
            return label
    return "银发"

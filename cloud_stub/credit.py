"""JOY-CRED: a member's credit score, grade, privileges and offline pay-by-face limit.

Score (350–950) = 350 + 600 × Σ weight × factor, each factor in [0, 1], higher is better:

    payment_history 0.30  on-time share of settled offline payments (on_time / all settlement events;
                          0.7 without history, so a newcomer is neither rewarded nor punished)
    tenure          0.15  days since the first purchase / 3 years, at most 1
    frequency       0.15  purchases in the last 365 days / 24, at most 1
    spend           0.15  log(1 + yuan spent in the last 365 days) / log(1 + 20,000), at most 1
    returns         0.10  1 − 2 × (returns / purchases), at least 0
    defaults        0.15  1 without a default, 0.4 with one, 0 with more

Grade by score: AA ≥ 800, A ≥ 700, B ≥ 600, C ≥ 500, else D. Each grade grants the privileges in
`PRIVILEGES` and an offline pay-by-face limit (`OFFLINE_LIMIT_CENTS`), which devices use when the
cloud cannot authorise a payment online.
"""

from __future__ import annotations

import math
from typing import Any

from api.v1 import credit_pb2
from cloud_stub import validate
from cloud_stub.crm import PURCHASE, RETURN
from cloud_stub.errors import ConflictError, InvalidRequestError
from cloud_stub.storage import Storage, now_ms
from cloud_stub.storage import db as sqldb

DAY_MS = 24 * 3600 * 1000
WEIGHTS = {"payment_history": 0.30, "tenure": 0.15, "frequency": 0.15, "spend": 0.15, "returns": 0.10,
           "defaults": 0.15}
SCORE_MIN, SCORE_SPAN = 350, 600
GRADES = [("AA", 800), ("A", 700), ("B", 600), ("C", 500), ("D", 0)]
ALL_PRIVILEGES = ["积分加速", "积分透支", "排号点餐优先", "租借服务", "网速优先", "活动优选", "停车先离场后付费", "金融服务准入"]
PRIVILEGES = {
    "AA": ALL_PRIVILEGES,
    "A": ALL_PRIVILEGES[:7],
    "B": ["积分加速", "排号点餐优先", "租借服务", "活动优选"],
    "C": ["活动优选"],
    "D": [],
}
OFFLINE_LIMIT_CENTS = {"AA": 200_000, "A": 100_000, "B": 50_000, "C": 20_000, "D": 0}
KINDS = (credit_pb2.CREDIT_EVENT_KIND_ON_TIME, credit_pb2.CREDIT_EVENT_KIND_LATE, credit_pb2.CREDIT_EVENT_KIND_DEFAULT)


def grade_for(score: int) -> str:
    """The grade of a score."""
    return next(g for g, floor in GRADES if score >= floor)


def factors(stats: dict[str, Any], now: int) -> dict[str, float]:
    """The six factors in [0, 1] from raw counts (see the module docstring)."""
    settled = stats["on_time"] + stats["late"] + stats["defaults"]
    first = stats["first_purchase_ms"]
    return {
        "payment_history": stats["on_time"] / settled if settled else 0.7,
        "tenure": min(1.0, max(0, now - first) / DAY_MS / (3 * 365)) if first else 0.0,
        "frequency": min(1.0, stats["purchases_365"] / 24),
        "spend": min(1.0, math.log1p(stats["spend_365_cents"] / 100) / math.log1p(20_000)),
        "returns": max(0.0, 1 - 2 * stats["returns"] / stats["purchases"]) if stats["purchases"] else 1.0,
        "defaults": {0: 1.0, 1: 0.4}.get(stats["defaults"], 0.0),
    }


def score_of(f: dict[str, float]) -> int:
    """350 + 600 × the weighted factors, rounded."""
    return int(round(SCORE_MIN + SCORE_SPAN * sum(WEIGHTS[k] * v for k, v in f.items())))


def credit_report(storage: Storage, member_id: str, *, now: int | None = None) -> dict[str, Any]:
    """The member's JOY-CRED report (NotFoundError for an unknown member)."""
    validate.ident(member_id, "member_id")
    at = now_ms() if now is None else now
    year_ago = at - 365 * DAY_MS
    with storage.transaction("credit report", write=False) as conn:
        sqldb.member_site(conn, member_id)
        p = conn.execute(
            "SELECT COUNT(*), MIN(at_ms), SUM(at_ms > ?), COALESCE(SUM(CASE WHEN at_ms > ? THEN amount_cents END), 0)"
            " FROM transactions WHERE member_id = ? AND kind = ?", (year_ago, year_ago, member_id, PURCHASE),
        ).fetchone()
        returns = conn.execute("SELECT COUNT(*) FROM transactions WHERE member_id = ? AND kind = ?",
                               (member_id, RETURN)).fetchone()[0]
        ev = dict(conn.execute("SELECT kind, COUNT(*) FROM credit_events WHERE member_id = ? GROUP BY kind",
                               (member_id,)).fetchall())
    stats = {"purchases": p[0], "first_purchase_ms": p[1] or 0, "purchases_365": p[2] or 0,
             "spend_365_cents": p[3] or 0, "returns": returns,
             "on_time": ev.get(credit_pb2.CREDIT_EVENT_KIND_ON_TIME, 0),
             "late": ev.get(credit_pb2.CREDIT_EVENT_KIND_LATE, 0),
             "defaults": ev.get(credit_pb2.CREDIT_EVENT_KIND_DEFAULT, 0)}
    f = factors(stats, at)
    score = score_of(f)
    grade = grade_for(score)
    return {"member_id": member_id, "score": score, "grade": grade,
            "factors": [{"name": k, "value": round(v, 4), "weight": WEIGHTS[k]} for k, v in f.items()],
            "privileges": list(PRIVILEGES[grade]), "offline_limit_cents": OFFLINE_LIMIT_CENTS[grade],
            "computed_at_ms": at}


def record_event(storage: Storage, *, event_id: str, member_id: str, kind: int, amount_cents: int, at_ms: int) -> None:
    """Record a settlement event (idempotent on event_id; reuse with other values is a ConflictError)."""
    validate.ident(event_id, "event_id")
    validate.ident(member_id, "member_id")
    if kind not in KINDS:
        raise InvalidRequestError(f"credit event kind must be ON_TIME, LATE or DEFAULT, got {kind}")
    validate.amount(amount_cents, "amount_cents", allow_zero=True)
    validate.event_time(at_ms, "at_ms")
    with storage.transaction("record credit event") as conn:
        sqldb.member_site(conn, member_id)
        old = conn.execute("SELECT member_id, kind, amount_cents FROM credit_events WHERE event_id = ?",
                           (event_id,)).fetchone()
        if old is not None:
            if tuple(old) != (member_id, kind, amount_cents):
                raise ConflictError(f"credit event {event_id!r} was recorded with other values")
            return
        conn.execute("INSERT INTO credit_events (event_id, member_id, kind, amount_cents, at_ms) VALUES (?, ?, ?, ?, ?)",
                     (event_id, member_id, kind, amount_cents, at_ms))

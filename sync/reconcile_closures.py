"""Closures of the cloud's compensations, brought back by Pull (cloud → counter).

A compensation (a double redemption's uncovered discount) is shown at the counter until the cashier
settles it there (`device/pos/reconcile.resolve`, which also tells the cloud through the outbox) — or
until the cloud's operator closes it (`joyedge-cloud reconcile close`: waived, collected elsewhere).
For the second, every Pull names the compensations this device still shows open (`open_ids`) and the
cloud answers the ones it has closed (`PullResponse.closures`). `store` keeps each answer as one more
row of the `compensations` table, of kind `KIND`, whose `cause_event_id` is the compensation closed
and whose message is the operator's note; the π-POS app then closes its item (`reconcile.absorb`).

Why Pull and not the push answer that brings compensations: a push happens only when the outbox has
events, Pull runs every sync cycle (and `joyedge sync --once`). Why ask with the open ids instead of a
cursor: nothing new to store on either side (no seq on closures, no cursor in the replica), and it
is idempotent by construction — an answered id is no longer asked, a repeated answer is ignored
(INSERT OR IGNORE), a snapshot or a restored cloud changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from api.v1 import sync_pb2

#: The kind of the row that records a closure from the cloud.
KIND = "reconcile_closed"
#: Compensation kinds the cloud's operator can close (cloud_stub/cli_reconcile.COUPON_KINDS); others
#: (e.g. a refused enrollment on a mirror) are never asked about.
CLOSABLE = ("coupon_double_redemption", "coupon_invalid")
#: Most ids one Pull asks about (the cloud refuses more): the newest open ones.
MAX_ASKED = 200


def closure_id(compensation_id: str) -> str:
    """The row id of the closure of `compensation_id` (one per compensation)."""
    return f"{compensation_id}:closed"


def open_ids(replica: Any) -> list[str]:
    """Compensations this device still shows open: not marked seen (the cashier's 已补收 marks it),
    of a closable kind, not answered by a closure yet; newest first, at most MAX_ASKED."""
    marks = ",".join("?" * len(CLOSABLE))
    with replica._lock:
        rows = replica._conn.execute(
            f"SELECT compensation_id FROM compensations c WHERE seen = 0 AND kind IN ({marks}) AND NOT EXISTS"
            " (SELECT 1 FROM compensations k WHERE k.compensation_id = c.compensation_id || ':closed')"
            " ORDER BY received_at_ms DESC, compensation_id LIMIT ?", (*CLOSABLE, MAX_ASKED)).fetchall()
    return [r[0] for r in rows]


def store(replica: Any, closures: Iterable[sync_pb2.CompensationClosure], now_ms: int | None = None) -> int:
    """Keep the cloud's closures (one transaction); returns how many are new. A closure of a
    compensation this device does not have is ignored (it asked only about its own)."""
    closures = list(closures)
    if not closures:
        return 0
    now = int(time.time() * 1000) if now_ms is None else now_ms
    added = 0
    with replica.transaction() as conn:
        for c in closures:
            comp = conn.execute("SELECT member_id, coupon_id FROM compensations WHERE compensation_id = ? AND kind != ?",
                                (c.compensation_id, KIND)).fetchone()
            if comp is None:
                continue
            cur = conn.execute("INSERT OR IGNORE INTO compensations VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, 0)",
                               (closure_id(c.compensation_id), KIND, c.compensation_id, comp[0], comp[1], c.note,
                                c.closed_at_ms, now))
            added += cur.rowcount
    return added

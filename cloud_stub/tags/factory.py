"""The tag factory run: aggregate transactions, apply the rules and models, write every tag at once.

One pass of SQL aggregation (`GROUP BY member_id` over the covering index on transactions) gives
per-member count, spend, first/last purchase and purchases in the last year; rules and models run
vectorised in numpy; all tags are written in one transaction with one block of change seqs, so a
run either lands completely (and devices pull the new tags) or not at all.

Tag kinds written (static ones never expire; dynamic ones expire TAG_TTL_MS after computation):
    static   gender (男/女), generation (60后…10后), zodiac (星座)
    dynamic  activity (R), frequency (F), monetary (M), rfm (8 segments), lifecycle, life_stage,
             purchasing_power, segment (k-means), churn_risk, ltv, spending_stars, visit_cycle
Each tag carries kind, value, score, computed_at and valid_until; tag_id is "<member_id>-<kind>".
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cloud_stub.crm import PURCHASE
from cloud_stub.storage import STREAM_TAGS, Storage, now_ms
from cloud_stub.tags import models, rules

TAG_TTL_MS = 90 * rules.DAY_MS
STATIC_KINDS = ("gender", "generation", "zodiac")
#: Rows per executemany call while writing (progress is reported between chunks).
WRITE_CHUNK = 50_000


@dataclass
class TagRun:
    """What a run computed."""

    as_of_ms: int
    members: int
    purchasing_members: int
    transactions: int
    tags_written: int
    kmeans_k: int
    kmeans_silhouette: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _aggregate(conn: Any, as_of_ms: int) -> tuple[list[str], np.ndarray]:
    """Per purchasing member: (ids, int64 array of count, spend, first, last, count in last year)."""
    year_ago = as_of_ms - 365 * rules.DAY_MS
    rows = conn.execute(
        "SELECT member_id, COUNT(*), SUM(amount_cents), MIN(at_ms), MAX(at_ms), SUM(at_ms > ?)"
        " FROM transactions WHERE kind = ? AND at_ms <= ? GROUP BY member_id",
        (year_ago, PURCHASE, as_of_ms),
    ).fetchall()
    ids = [r[0] for r in rows]
    data = np.array([tuple(r)[1:] for r in rows], dtype=np.int64).reshape(len(rows), 5)
    return ids, data


def compute_tags(
    storage: Storage,
    *,
    as_of_ms: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    check: Callable[[], None] | None = None,
) -> TagRun:
    """Compute and write every member's tags as of `as_of_ms` (default now).

    `progress` receives one line per stage; `check` is called between stages and may raise (e.g. when
    a caller's deadline passed) — nothing is written then.
    """
    say = progress or (lambda _m: None)
    tick = check or (lambda: None)
    as_of = now_ms() if as_of_ms is None else int(as_of_ms)
    computed = now_ms()
    until = computed + TAG_TTL_MS
    as_of_date = dt.datetime.fromtimestamp(as_of / 1000, dt.UTC).date()

    with storage.transaction("compute tags", write=False) as conn:
        say("reading members")
        members = conn.execute("SELECT member_id, gender, birthday FROM members ORDER BY member_id").fetchall()
        say(f"aggregating transactions of {len(members)} members")
        ids, agg = _aggregate(conn, as_of)
    tick()
    count, spend, first, last, last_year = (agg[:, i] for i in range(5))
    total_txns = int(count.sum())
    say(f"applying rules to {len(ids)} purchasing members ({total_txns} purchases)")
    days = rules.recency_days(last, as_of)
    r = rules.r_labels(days)
    f = rules.f_labels(count)
    m = rules.m_labels(spend, count, int(spend.sum()), total_txns)
    rfm = rules.rfm_codes(days, count, spend)
    rfm_names = rules.rfm_labels(rfm)
    life = rules.lifecycle_labels(days, count)
    avg_ticket = spend / np.maximum(count, 1)
    power = models.rank_labels(avg_ticket, ("高消费力", "中消费力", "低消费力"))
    stars = 5 - np.minimum(4, (np.argsort(np.argsort(-spend, kind="stable")) * 5) // max(len(ids), 1))
    tick()
    say("k-means segments (k by silhouette)")
    seg, k, sil = models.segments(days, count, spend, seed=seed)
    tick()
    say("churn risk and lifetime value")
    gap = models.usual_gap_days(first, last, count)
    p_churn = models.churn_probability(days, gap)
    churn = models.churn_labels(p_churn)
    ltv = models.lifetime_value_cents(p_churn, gap, spend, count)
    ltv_labels = models.rank_labels(ltv, ("高价值", "中价值", "低价值"))
    tick()

    say("building tag rows")
    out: list[tuple[str, str, str, str, float, int, int]] = []

    def add(member_id: str, kind: str, value: str, score: float, valid_until: int) -> None:
        if value:
            out.append((f"{member_id}-{kind}", member_id, kind, value, float(score), computed, valid_until))

    index = {mid: i for i, mid in enumerate(ids)}
    for member_id, gender, birthday in members:
        add(member_id, "gender", rules.GENDER_LABELS.get(gender, ""), 1.0, 0)
        add(member_id, "generation", rules.generation(birthday), 1.0, 0)
        add(member_id, "zodiac", rules.zodiac(birthday), 1.0, 0)
        add(member_id, "life_stage", rules.life_stage(rules.age_years(birthday, as_of_date)), 1.0, until)
        i = index.get(member_id)
        if i is None:
            add(member_id, "lifecycle", rules.LIFECYCLE_ACQUISITION, 0.0, until)
            continue
        add(member_id, "activity", r[i], float(days[i]), until)
        add(member_id, "frequency", f[i], float(count[i]), until)
        add(member_id, "monetary", m[i], float(avg_ticket[i]) / 100.0, until)
        add(member_id, "rfm", rfm_names[i], float(int(rfm[i], 2)), until)
        add(member_id, "lifecycle", life[i], float(days[i]), until)
        add(member_id, "purchasing_power", power[i], float(avg_ticket[i]) / 100.0, until)
        add(member_id, "segment", seg[i], sil, until)
        add(member_id, "churn_risk", churn[i], round(float(p_churn[i]), 4), until)
        add(member_id, "ltv", ltv_labels[i], round(float(ltv[i]) / 100.0, 2), until)
        add(member_id, "spending_stars", str(int(stars[i])), float(stars[i]), until)
        add(member_id, "visit_cycle", f"{last_year[i] / 12:.1f}", float(last_year[i]) / 12, until)
    tick()

    with storage.transaction("write tags") as conn:
        # One block of seqs for the whole run, in row order (the seq counter is locked meanwhile).
        base = int(conn.execute("SELECT value FROM seq_counter WHERE id = 1").fetchone()[0])
        conn.execute("UPDATE seq_counter SET value = value + ? WHERE id = 1", (len(out),))
        for start in range(0, len(out), WRITE_CHUNK):
            chunk = out[start:start + WRITE_CHUNK]
            conn.executemany(
                "INSERT OR REPLACE INTO tags (tag_id, member_id, kind, value, score, computed_at_ms,"
                " valid_until_ms, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row, base + start + j + 1) for j, row in enumerate(chunk)],
            )
            say(f"writing tags {min(start + WRITE_CHUNK, len(out))}/{len(out)}")
            tick()
        # A tag written again replaces its tombstone in its member's site.
        conn.execute(
            "DELETE FROM tombstones WHERE stream = ? AND EXISTS (SELECT 1 FROM tags t JOIN members m"
            " ON m.member_id = t.member_id WHERE t.tag_id = tombstones.key AND m.site_id = tombstones.site_id)",
            (STREAM_TAGS,),
        )
        run = TagRun(as_of, len(members), len(ids), total_txns, len(out), k, round(sil, 4))
        conn.execute(
            "INSERT INTO tag_runs (as_of_ms, finished_at_ms, members, transactions, tags_written, summary)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (as_of, now_ms(), len(members), total_txns, len(out), json.dumps(run.to_dict())),
        )
    say(f"done: {len(out)} tags for {len(members)} members (k-means k={k}, silhouette {sil:.3f})")
    return run

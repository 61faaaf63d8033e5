"""Campaigns (D客): coupons issued to the members a tag expression selects, within per-member limits.

Issuing is idempotent in effect: a member never holds more than `per_member_limit` coupons of one
campaign, however often the campaign is issued; each run gives every matching member below the limit
one more coupon. Coupons replicate to the member's site devices through `Sync.Pull` (STREAM_COUPONS).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from api.v1 import crm_pb2
from cloud_stub import validate
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.marketing.expr import MEMBER_FIELDS, TagExpression
from cloud_stub.storage import STREAM_COUPONS, Storage, now_ms
from cloud_stub.storage import db as sqldb

DEFAULT_USAGE_HINT = "打开小程序卡包出示给收银员"
MAX_PER_MEMBER_LIMIT = 100


def create_campaign(storage: Storage, c: dict[str, Any]) -> dict[str, Any]:
    """Validate and store a campaign (keys as in the `Campaign` message; store_ids a list).
    Re-creating an identical campaign is a no-op; changing an existing one is a ConflictError."""
    validate.ident(c["campaign_id"], "campaign_id")
    validate.ident(c["site_id"], "site_id")
    validate.text(c["name"], "name", required=True, max_len=200)
    validate.text(c["title"], "title", required=True, max_len=100)
    validate.text(c.get("usage_hint", ""), "usage_hint", max_len=200)
    TagExpression(c["expression"])
    kind = c["kind"]
    if kind not in (crm_pb2.COUPON_KIND_CASH, crm_pb2.COUPON_KIND_THRESHOLD):
        raise InvalidRequestError("coupon kind must be COUPON_KIND_CASH or COUPON_KIND_THRESHOLD")
    validate.amount(c["value_cents"], "value_cents")
    if kind == crm_pb2.COUPON_KIND_THRESHOLD:
        validate.amount(c["threshold_cents"], "threshold_cents")
        if c["threshold_cents"] <= c["value_cents"]:
            raise InvalidRequestError("a threshold coupon's threshold must exceed its value (满300减30)")
    elif c["threshold_cents"]:
        raise InvalidRequestError("a cash coupon has no threshold; use COUPON_KIND_THRESHOLD for 满X减Y")
    validate.window(c["valid_from_ms"], c["valid_until_ms"], "coupon validity")
    limit = c.get("per_member_limit") or 1
    if not 1 <= limit <= MAX_PER_MEMBER_LIMIT:
        raise InvalidRequestError(f"per_member_limit must be between 1 and {MAX_PER_MEMBER_LIMIT}, got {limit}")
    store_ids = [validate.ident(s, "store_ids[]") for s in c.get("store_ids", [])]
    row = {**{k: c[k] for k in ("campaign_id", "site_id", "name", "expression", "title", "kind",
                                "value_cents", "threshold_cents", "valid_from_ms", "valid_until_ms")},
           "store_ids": json.dumps(store_ids), "per_member_limit": int(limit),
           "usage_hint": c.get("usage_hint") or DEFAULT_USAGE_HINT}
    with storage.transaction("create campaign") as conn:
        if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (row["site_id"],)).fetchone() is None:
            raise NotFoundError(f"site {row['site_id']!r} does not exist")
        for s in store_ids:
            got = conn.execute("SELECT site_id FROM stores WHERE store_id = ?", (s,)).fetchone()
            if got is None or got[0] != row["site_id"]:
                raise NotFoundError(f"store {s!r} is not a store of site {row['site_id']!r}")
        old = conn.execute("SELECT * FROM campaigns WHERE campaign_id = ?", (row["campaign_id"],)).fetchone()
        if old is not None:
            if any(old[k] != v for k, v in row.items()):
                raise ConflictError(f"campaign {row['campaign_id']!r} exists with other settings; use a new id")
        else:
            conn.execute(
                "INSERT INTO campaigns (campaign_id, site_id, name, expression, title, kind, value_cents,"
                " threshold_cents, store_ids, valid_from_ms, valid_until_ms, per_member_limit, usage_hint,"
                " created_at_ms) VALUES (:campaign_id, :site_id, :name, :expression, :title, :kind,"
                " :value_cents, :threshold_cents, :store_ids, :valid_from_ms, :valid_until_ms,"
                " :per_member_limit, :usage_hint, :created_at_ms)",
                {**row, "created_at_ms": now_ms()},
            )
    return get_campaign(storage, row["campaign_id"])


def get_campaign(storage: Storage, campaign_id: str) -> dict[str, Any]:
    """A campaign (NotFoundError when absent), store_ids as a list."""
    with storage.transaction("get campaign", write=False) as conn:
        row = conn.execute("SELECT * FROM campaigns WHERE campaign_id = ?", (campaign_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"campaign {campaign_id!r} does not exist")
    out = dict(row)
    out["store_ids"] = json.loads(out["store_ids"])
    return out


def issue_campaign(
    storage: Storage, campaign_id: str, *, dry_run: bool = False, check: Callable[[], None] | None = None
) -> dict[str, int]:
    """Issue the campaign's coupon to every matching member below the limit; returns counts."""
    validate.ident(campaign_id, "campaign_id")
    camp = get_campaign(storage, campaign_id)
    expression = TagExpression(camp["expression"])
    now = now_ms()
    if camp["valid_until_ms"] < now:
        raise ConflictError(f"campaign {campaign_id!r} ended; its coupons would be expired on issue")
    with storage.transaction("issue campaign") as conn:
        values: dict[str, dict[str, Any]] = {}
        scores: dict[str, dict[str, float]] = defaultdict(dict)
        for row in conn.execute(f"SELECT member_id, {', '.join(MEMBER_FIELDS)} FROM members WHERE site_id = ?",
                                (camp["site_id"],)):
            values[row[0]] = {f: row[f] for f in MEMBER_FIELDS}
        for mid, kind, value, score in conn.execute(
            "SELECT t.member_id, t.kind, t.value, t.score FROM tags t JOIN members m ON m.member_id = t.member_id"
            " WHERE m.site_id = ? AND (t.valid_until_ms = 0 OR t.valid_until_ms > ?)",
            (camp["site_id"], now),
        ):
            values[mid][kind] = value
            scores[mid][kind] = score
        held = dict(conn.execute(
            "SELECT member_id, COUNT(*) FROM coupons WHERE campaign_id = ? GROUP BY member_id", (campaign_id,)
        ).fetchall())
        matched = issued = at_limit = 0
        for mid in sorted(values):
            if not expression.matches(values[mid], scores[mid]):
                continue
            matched += 1
            have = held.get(mid, 0)
            if have >= camp["per_member_limit"]:
                at_limit += 1
                continue
            issued += 1
            if dry_run:
                continue
            seq = sqldb.next_seq(conn)
            coupon_id = f"{campaign_id}-{mid}-{have + 1}"
            conn.execute(
                "INSERT INTO coupons (coupon_id, member_id, title, kind, value_cents, threshold_cents, store_ids,"
                " valid_from_ms, valid_until_ms, usage_hint, status, seq, campaign_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (coupon_id, mid, camp["title"], camp["kind"], camp["value_cents"], camp["threshold_cents"],
                 json.dumps(camp["store_ids"]), camp["valid_from_ms"], camp["valid_until_ms"],
                 camp["usage_hint"], crm_pb2.COUPON_STATUS_ISSUED, seq, campaign_id),
            )
            sqldb.clear_tombstone(conn, STREAM_COUPONS, coupon_id, camp["site_id"])
        if check is not None:
            check()  # a passed deadline rolls the whole issue back
    return {"matched": matched, "issued": issued, "at_limit": at_limit}

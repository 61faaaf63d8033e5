"""CRM domain: member tiers and the points ledger, transactions, and the member profile.

Tiers follow points thresholds (`TIER_THRESHOLDS`): a ledger entry that lifts the balance over a
threshold upgrades the member; a spend never downgrades within the period (the operator's yearly
review does). Every write is one transaction through `Storage.transaction`; a member change bumps
the member's seq so devices receive the new points and tier through `Sync.Pull`.
"""

from __future__ import annotations

from typing import Any

from api.v1 import crm_service_pb2
from cloud_stub import validate
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import STREAM_MEMBERS, Storage, now_ms
from cloud_stub.storage import db as sqldb

PURCHASE = crm_service_pb2.TRANSACTION_KIND_PURCHASE
RETURN = crm_service_pb2.TRANSACTION_KIND_RETURN
#: Card tiers, highest first: (tier, points needed).
TIER_THRESHOLDS: list[tuple[str, int]] = [("璀璨卡", 10000), ("金卡", 5000), ("银卡", 2000), ("普卡", 0)]
TIER_RANK = {name: rank for rank, (name, _) in enumerate(reversed(TIER_THRESHOLDS))}


def tier_for(points: int) -> str:
    """The tier a points balance qualifies for."""
    for name, needed in TIER_THRESHOLDS:
        if points >= needed:
            return name
    return TIER_THRESHOLDS[-1][0]


def keep_points(tier: str) -> int:
    """Points needed this period to keep `tier`."""
    return dict(TIER_THRESHOLDS).get(tier, 0)


def record_transaction(
    storage: Storage,
    *,
    txn_id: str,
    member_id: str,
    store_id: str,
    amount_cents: int,
    at_ms: int,
    kind: int = PURCHASE,
    brand: str = "",
) -> dict[str, Any]:
    """Record a purchase or return (idempotent on txn_id: a retry returns the stored row; a reuse of
    the id with other values is a ConflictError). The brand defaults to the store's."""
    validate.ident(txn_id, "txn_id")
    validate.ident(member_id, "member_id")
    validate.ident(store_id, "store_id")
    validate.amount(amount_cents, "amount_cents")
    validate.event_time(at_ms, "at_ms")
    validate.text(brand, "brand", max_len=64)
    if kind not in (PURCHASE, RETURN):
        raise InvalidRequestError(f"transaction kind must be PURCHASE or RETURN, got {kind}")
    with storage.transaction("record transaction") as conn:
        sqldb.member_site(conn, member_id)
        store = conn.execute("SELECT brand FROM stores WHERE store_id = ?", (store_id,)).fetchone()
        if store is None:
            raise NotFoundError(f"store {store_id!r} does not exist (register it with DeviceRegistry.UpsertStore)")
        row = {"txn_id": txn_id, "member_id": member_id, "store_id": store_id,
               "brand": brand or store[0], "amount_cents": int(amount_cents), "at_ms": int(at_ms),
               "kind": int(kind)}
        old = conn.execute("SELECT * FROM transactions WHERE txn_id = ?", (txn_id,)).fetchone()
        if old is not None:
            if dict(old) != row:
                raise ConflictError(f"transaction {txn_id!r} was recorded with other values; use a new txn_id")
            return row
        conn.execute(
            "INSERT INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
            " VALUES (:txn_id, :member_id, :store_id, :brand, :amount_cents, :at_ms, :kind)", row,
        )
    return row


def list_transactions(storage: Storage, member_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """A member's transactions, newest first (NotFoundError for an unknown member)."""
    validate.ident(member_id, "member_id")
    if limit <= 0 or limit > 10000:
        raise InvalidRequestError(f"limit must be between 1 and 10000, got {limit}")
    with storage.transaction("list transactions", write=False) as conn:
        sqldb.member_site(conn, member_id)
        rows = conn.execute(
            "SELECT * FROM transactions WHERE member_id = ? ORDER BY at_ms DESC, txn_id LIMIT ?",
            (member_id, limit),
        ).fetchall()
    return [dict(r) for r in rows]


def add_points(storage: Storage, *, entry_id: str, member_id: str, delta: int, reason: str) -> dict[str, Any]:
    """Post a points ledger entry (idempotent on entry_id); upgrades the tier when a threshold is
    passed. A spend beyond the balance is a ConflictError and changes nothing."""
    validate.ident(entry_id, "entry_id")
    validate.ident(member_id, "member_id")
    validate.text(reason, "reason", required=True, max_len=200)
    if delta == 0 or abs(delta) > 100_000_000:
        raise InvalidRequestError(f"delta must be non-zero and at most 100,000,000 points, got {delta}")
    with storage.transaction("add points") as conn:
        old = conn.execute("SELECT * FROM points_ledger WHERE entry_id = ?", (entry_id,)).fetchone()
        if old is not None:
            if old["member_id"] != member_id or old["delta"] != delta:
                raise ConflictError(f"points entry {entry_id!r} was posted with other values; use a new entry_id")
            return dict(old)
        member = conn.execute("SELECT * FROM members WHERE member_id = ?", (member_id,)).fetchone()
        if member is None:
            raise NotFoundError(f"member {member_id!r} does not exist")
        balance = int(member["points"]) + int(delta)
        if balance < 0:
            raise ConflictError(f"member {member_id!r} has {member['points']} points; cannot spend {-delta}")
        tier = member["tier"]
        earned = tier_for(balance)
        if TIER_RANK.get(earned, 0) > TIER_RANK.get(tier, 0):
            tier = earned
        seq = sqldb.next_seq(conn)
        at = now_ms()
        conn.execute(
            "UPDATE members SET points = ?, tier = ?, tier_keep_points = ?, updated_at_ms = ?, seq = ?"
            " WHERE member_id = ?",
            (balance, tier, keep_points(tier), at, seq, member_id),
        )
        sqldb.clear_tombstone(conn, STREAM_MEMBERS, member_id, member["site_id"])
        entry = {"entry_id": entry_id, "member_id": member_id, "delta": int(delta), "balance_after": balance,
                 "tier_after": tier, "reason": reason, "at_ms": at}
        conn.execute(
            "INSERT INTO points_ledger (entry_id, member_id, delta, balance_after, tier_after, reason, at_ms)"
            " VALUES (:entry_id, :member_id, :delta, :balance_after, :tier_after, :reason, :at_ms)", entry,
        )
    return entry


def member_tags(storage: Storage, member_id: str, *, at_ms: int | None = None) -> list[dict[str, Any]]:
    """A member's tags that have not expired at `at_ms` (default now), ordered by kind."""
    at = now_ms() if at_ms is None else at_ms
    with storage.transaction("read tags", write=False) as conn:
        rows = conn.execute(
            "SELECT * FROM tags WHERE member_id = ? AND (valid_until_ms = 0 OR valid_until_ms > ?)"
            " ORDER BY kind, tag_id",
            (member_id, at),
        ).fetchall()
    return [dict(r) for r in rows]


def member_coupons(storage: Storage, member_id: str) -> list[dict[str, Any]]:
    """A member's coupons, ordered by id."""
    import json

    with storage.transaction("read coupons", write=False) as conn:
        rows = conn.execute("SELECT * FROM coupons WHERE member_id = ? ORDER BY coupon_id", (member_id,)).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        d["store_ids"] = json.loads(d["store_ids"])
        out.append(d)
    return out

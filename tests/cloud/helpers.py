"""Small helpers for the cloud tests: members and transactions over gRPC, and a write fingerprint."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from api.v1 import crm_service_pb2

DAY_MS = 24 * 3600 * 1000
TABLES = ("members", "tags", "templates", "coupons", "transactions", "points_ledger", "campaigns",
          "redemptions", "compensations", "credit_events", "identities", "member_merges", "plates", "parking",
          "payments", "refunds", "devices", "claim_tokens", "tombstones", "tag_runs", "consents")


def add_member(stubs: dict, member_id: str, site_id: str = "site-t", **kw: str) -> None:
    """Create a member over gRPC."""
    stubs["crm"].UpsertMember(crm_service_pb2.UpsertMemberRequest(
        member_id=member_id, site_id=site_id, name=kw.get("name", "王芳"), phone=kw.get("phone", "13800001234"),
        birthday=kw.get("birthday", "1990-05-01"), gender=kw.get("gender", "F")), timeout=10)


def buy(stubs: dict, txn_id: str, member_id: str, amount_cents: int, at_ms: int, store_id: str = "store-t1",
        kind: int = crm_service_pb2.TRANSACTION_KIND_PURCHASE) -> None:
    """Record a transaction over gRPC."""
    stubs["crm"].RecordTransaction(crm_service_pb2.Transaction(
        txn_id=txn_id, member_id=member_id, store_id=store_id, amount_cents=amount_cents, at_ms=at_ms, kind=kind),
        timeout=10)


def fingerprint(db: Path) -> dict[str, int]:
    """Row counts of every domain table plus the change seq: equal before and after = nothing written."""
    with sqlite3.connect(db) as conn:
        out = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        out["seq"] = conn.execute("SELECT value FROM seq_counter").fetchone()[0]
    return out

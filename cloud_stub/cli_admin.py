"""Operator commands of `joyedge-cloud`: `tags compute`, `member show`, `member transactions`.

Each takes `--db PATH`; output is a table, or JSON with `--json`. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_member_commands(member_sub: Any, db_arg: Any) -> None:
    """`member show ID` and `member transactions ID`."""
    show = member_sub.add_parser("show", help="a member's profile, tags, credit, coupons and linked ids")
    db_arg(show)
    show.add_argument("member_id")
    show.add_argument("--json", action="store_true")
    txns = member_sub.add_parser("transactions", help="a member's transactions, newest first")
    db_arg(txns)
    txns.add_argument("member_id")
    txns.add_argument("--limit", type=int, default=100)
    txns.add_argument("--json", action="store_true")


def add_tags_commands(sub: Any, db_arg: Any) -> None:
    """`tags compute`."""
    tags = sub.add_parser("tags", help="the tag factory")
    tags_sub = tags.add_subparsers(dest="tags_command", required=True, metavar="ACTION")
    compute = tags_sub.add_parser("compute", help="compute every member's tags now (shows progress)")
    db_arg(compute)
    compute.add_argument("--as-of-ms", type=int, default=0, help="compute as of this time (epoch ms; default now)")
    compute.add_argument("--seed", type=int, default=0, help="k-means seed")
    compute.add_argument("--json", action="store_true")


def _date(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def member_profile(storage: Any, member_id: str) -> dict[str, Any]:
    """Everything an operator sees about one member (phone only as its last 4 digits)."""
    from api.v1 import fusion_pb2
    from cloud_stub import credit, crm, fusion

    m = storage.get_member(member_id)
    profile = {k: m[k] for k in ("member_id", "site_id", "name", "tier", "points", "tier_keep_points",
                                 "phone_last4", "gender", "birthday", "updated_at_ms")}
    tags = [{k: t[k] for k in ("kind", "value", "score", "computed_at_ms", "valid_until_ms")}
            for t in crm.member_tags(storage, member_id)]
    coupons = [{k: c[k] for k in ("coupon_id", "title", "kind", "value_cents", "threshold_cents", "store_ids",
                                  "valid_from_ms", "valid_until_ms", "status", "campaign_id")}
               for c in crm.member_coupons(storage, member_id)]
    linked = [{"id_type": fusion_pb2.IdType.Name(i["id_type"]), "id_value": i["id_value"], "evidence": i["evidence"],
               "confidence": i["confidence"], "observed_at_ms": i["observed_at_ms"]}
              for i in fusion.list_identities(storage, member_id)]
    return {"profile": profile, "tags": tags, "credit": credit.credit_report(storage, member_id),
            "coupons": coupons, "linked_ids": linked}


def member_show(storage: Any, args: argparse.Namespace, table: Any) -> int:
    """Print `member show`."""
    data = member_profile(storage, args.member_id)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    p, c = data["profile"], data["credit"]
    print(f"{p['member_id']}  {p['name']}  {p['tier']}  {p['points']} 积分  phone ****{p['phone_last4']}")
    print(f"JOY-CRED {c['score']} ({c['grade']}), offline limit {c['offline_limit_cents'] / 100:.2f}: "
          + ("、".join(c["privileges"]) or "-"))
    print(table(("kind", "value", "score", "valid_until"),
                [(t["kind"], t["value"], f"{t['score']:.4g}", _date(t["valid_until_ms"]) if t["valid_until_ms"] else "never")
                 for t in data["tags"]]))
    for cp in data["coupons"]:
        print(f"coupon {cp['coupon_id']}: {cp['title']} (status {cp['status']})")
    for li in data["linked_ids"]:
        print(f"linked {li['id_type']} {li['id_value']} ({li['evidence']})")
    return 0


def member_transactions(storage: Any, args: argparse.Namespace, table: Any) -> int:
    """Print `member transactions`."""
    from api.v1 import crm_service_pb2
    from cloud_stub import crm

    rows = crm.list_transactions(storage, args.member_id, args.limit)
    out = [{"txn_id": r["txn_id"], "date": _date(r["at_ms"]), "at_ms": r["at_ms"], "store": r["store_id"],
            "brand": r["brand"], "amount_cents": r["amount_cents"],
            "kind": crm_service_pb2.TransactionKind.Name(r["kind"]).removeprefix("TRANSACTION_KIND_").lower()}
           for r in rows]
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(table(("date", "store", "brand", "amount", "kind"),
                [(r["date"], r["store"], r["brand"], f"{r['amount_cents'] / 100:.2f}", r["kind"]) for r in out]))
    return 0


def tags_compute(storage: Any, args: argparse.Namespace, prog: str) -> int:
    """Run the tag factory with progress on stderr."""
    from cloud_stub.tags import compute_tags

    def progress(msg: str) -> None:
        print(f"{prog}: tags: {msg}", file=sys.stderr, flush=True)

    run = compute_tags(storage, as_of_ms=args.as_of_ms or None, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps(run.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"{run.tags_written} tags for {run.members} members ({run.transactions} purchases); "
              f"k-means k={run.kmeans_k}, silhouette {run.kmeans_silhouette:.3f}")
    return 0


__all__ = ["add_member_commands", "add_tags_commands", "member_profile",
           "member_show", "member_transactions", "tags_compute"]

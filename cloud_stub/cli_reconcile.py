"""`joyedge-cloud reconcile`: the operator's view of flagged sales (double redemptions and their compensations).

    joyedge-cloud reconcile list [--site S] [--open | --all] [--json] --db var/cloud.db
    joyedge-cloud reconcile close COMP_ID --note "collected at the counter" --db var/cloud.db

A compensation is what the cloud answered a device whose offline coupon use it could not honour
(marketing/redeem: `coupon_double_redemption`, `coupon_invalid`). The counter shows it to the cashier;
here the operator sees every one of the mall with its sale (from the redemption id ``red-<sale_id>``),
device, store, member (name masked), amount and state, and closes it with a note once settled. The
operator's state lives in `reconcile_closures` (this module's table, made by the schema migrations; one row per
closed compensation, so a second close is refused instead of overwriting the first note).

The counter and the operator close the same item, each seeing the other's close (ARCHITECTURE.md, π-POS):
- counter → cloud: the cashier's 已补收 is a `ReconciliationEvent`; `device_events` applies it through
  `close_at_counter` (note `COUNTER_NOTE`), only from the device the compensation was issued to; a close
  already there (the operator was first) stays as it was and the event is answered DUPLICATE;
- cloud → counter: every Pull names the compensations the device still shows open and `closures_for`
  answers the closed ones, which the counter then closes as "closed by operator: <note>".
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms

COUPON_KINDS = ("coupon_double_redemption", "coupon_invalid")
MAX_NOTE = 500
#: The closing note of a difference the cashier collected at the counter (ReconciliationEvent).
COUNTER_NOTE = "已在收银台补收 · collected at counter {device} ({by})"
#: ... and of one whose sale was refunded in full at the counter (nothing left to collect).
REFUNDED_NOTE = "整单已在收银台退款 · sale refunded in full at counter {device} ({by})"
COUNTER_NOTES = {"collected": COUNTER_NOTE, "refunded": REFUNDED_NOTE}
#: Most compensation ids one Pull may ask about (PullRequest.open_compensation_ids); the device sends
#: its newest open ones, so a longer list is a device bug, refused rather than answered in part.
MAX_ASKED = 200


def mask(name: str) -> str:
    """"王建" → "*建": the surname hidden, as on the device screens."""
    return "*" + name[1:] if len(name) > 1 else ("*" if name else "")


def flagged(storage: Storage, *, site_id: str | None = None, open_only: bool = True) -> list[dict[str, Any]]:
    """The coupon compensations of the cloud (one site's, when given), oldest first."""
    with storage.transaction("reconcile list", write=False) as conn:
        rows = conn.execute(
            "SELECT c.event_id, c.kind, c.device_id, c.coupon_id, c.redemption_id, c.member_id, c.amount_cents,"
            " c.message, c.created_at_ms, r.store_id, r.order_amount_cents, d.site_id AS device_site,"
            " m.site_id AS member_site, m.name, k.note, k.closed_at_ms"
            " FROM compensations c LEFT JOIN redemptions r ON r.redemption_id = c.redemption_id"
            " LEFT JOIN devices d ON d.device_id = c.device_id LEFT JOIN members m ON m.member_id = c.member_id"
            " LEFT JOIN reconcile_closures k ON k.compensation_id = c.event_id"
            f" WHERE c.kind IN ({','.join('?' * len(COUPON_KINDS))}) ORDER BY c.created_at_ms, c.event_id",
            COUPON_KINDS).fetchall()
    out = []
    for r in rows:
        site = r["device_site"] or r["member_site"] or ""
        if site_id and site != site_id:
            continue
        state = "closed" if r["closed_at_ms"] else "open"
        if open_only and state != "open":
            continue
        rid = r["redemption_id"] or ""
        out.append({"id": r["event_id"], "kind": r["kind"], "sale_id": rid[4:] if rid.startswith("red-") else "",
                    "redemption_id": rid, "device_id": r["device_id"], "site_id": site, "store_id": r["store_id"] or "",
                    "member": mask(r["name"] or ""), "coupon_id": r["coupon_id"], "amount_cents": int(r["amount_cents"]),
                    "state": state, "note": r["note"] or "", "created_at_ms": int(r["created_at_ms"]),
                    "closed_at_ms": int(r["closed_at_ms"] or 0), "message": r["message"]})
    return out


def close(storage: Storage, compensation_id: str, note: str) -> dict[str, Any]:
    """Close one flagged sale with the operator's note (once)."""
    note = note.strip()
    if not note or len(note) > MAX_NOTE:
        raise InvalidRequestError(f"a closing note of 1..{MAX_NOTE} characters is needed (what was done)")
    with storage.transaction("reconcile close") as conn:
        comp = conn.execute("SELECT kind FROM compensations WHERE event_id = ?", (compensation_id,)).fetchone()
        if comp is None or comp[0] not in COUPON_KINDS:
            raise NotFoundError(f"no flagged sale {compensation_id!r} (see `joyedge-cloud reconcile list --all`)")
        old = conn.execute("SELECT note FROM reconcile_closures WHERE compensation_id = ?", (compensation_id,)).fetchone()
        if old is not None:
            raise ConflictError(f"{compensation_id} was closed already: {old[0]}")
        conn.execute("INSERT INTO reconcile_closures VALUES (?, ?, ?)", (compensation_id, note, now_ms()))
    return {"id": compensation_id, "state": "closed", "note": note}


def close_at_counter(conn: Any, *, compensation_id: str, device_id: str, by: str, at_ms: int,
                     state: str = "collected") -> str:
    """Inside an open cloud transaction: close a flagged sale the cashier settled at the counter.

    Returns "" when it is closed by this call (or was, by the same close, before a lost ack), else
    why the close already there was kept (the operator was first). The caller has checked that the
    compensation was issued to `device_id` (services/binding.EVENT_OWNERS)."""
    comp = conn.execute("SELECT kind FROM compensations WHERE event_id = ?", (compensation_id,)).fetchone()
    if comp is None or comp[0] not in COUPON_KINDS:
        raise InvalidRequestError(f"{compensation_id!r} is not a flagged sale; nothing to close at the counter")
    note = COUNTER_NOTES[state].format(device=device_id, by=by or "cashier")[:MAX_NOTE]
    old = conn.execute("SELECT note FROM reconcile_closures WHERE compensation_id = ?", (compensation_id,)).fetchone()
    if old is None:
        conn.execute("INSERT INTO reconcile_closures VALUES (?, ?, ?)", (compensation_id, note, at_ms))
        return ""
    return "" if old[0] == note else f"closed already in the cloud: {old[0]}"


def closures_for(storage: Storage, device_id: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Of the compensation `ids` a device asks about, the closed ones that were issued to that device
    (id, note, closed_at_ms), in the order asked; other devices' ids are answered as if open."""
    if len(ids) > MAX_ASKED:
        raise InvalidRequestError(f"at most {MAX_ASKED} open compensations per pull, got {len(ids)}")
    if not ids:
        return []
    wanted = list(dict.fromkeys(ids))
    marks = ",".join("?" * len(wanted))
    with storage.transaction("reconcile closures", write=False) as conn:
        rows = conn.execute(
            "SELECT k.compensation_id, k.note, k.closed_at_ms FROM reconcile_closures k JOIN compensations c"
            f" ON c.event_id = k.compensation_id WHERE c.device_id = ? AND k.compensation_id IN ({marks})",
            (device_id, *wanted)).fetchall()
    found = {r[0]: {"compensation_id": r[0], "note": r[1], "closed_at_ms": int(r[2])} for r in rows}
    return [found[i] for i in wanted if i in found]


def add_reconcile_commands(sub: argparse._SubParsersAction, db_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """`reconcile list` and `reconcile close` under the `joyedge-cloud` parser."""
    rec = sub.add_parser("reconcile", help="flagged sales: double redemptions and their compensations")
    rsub = rec.add_subparsers(dest="reconcile_command", required=True, metavar="ACTION")
    lst = rsub.add_parser("list", help="list flagged sales (open ones by default)")
    db_arg(lst)
    lst.add_argument("--site", help="only this site's")
    which = lst.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="only the open ones (default)")
    which.add_argument("--all", action="store_true", help="open and closed")
    lst.add_argument("--json", action="store_true")
    cls = rsub.add_parser("close", help="close a flagged sale with a note")
    db_arg(cls)
    cls.add_argument("id", help="the compensation id (first column of `reconcile list`)")
    cls.add_argument("--note", required=True, help="what was done (collected, waived, …)")


def run_reconcile(args: argparse.Namespace, open_storage: Callable[..., Storage],
                  table: Callable[[Any, Any], str]) -> int:
    """Run `joyedge-cloud reconcile …`."""
    storage = open_storage(args.db, create=False)
    try:
        if args.reconcile_command == "close":
            print(json.dumps(close(storage, args.id, args.note), ensure_ascii=False))
            return 0
        items = flagged(storage, site_id=args.site, open_only=not args.all)
    finally:
        storage.close()
    if args.json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
    else:
        print(table(["id", "sale", "device", "store", "member", "amount", "state", "kind"],
                    [[i["id"], i["sale_id"], i["device_id"], i["store_id"], i["member"],
                      f"{i['amount_cents'] / 100:.2f}", i["state"] + (f" ({i['note']})" if i["note"] else ""),
                      i["kind"]] for i in items]))
    return 0

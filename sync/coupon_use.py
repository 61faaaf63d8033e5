"""The device's "coupon used here" record, and when sync releases it.

A coupon used at this device gets a `local_redemptions` row in the same transaction as its outbox
event (`Outbox.redemption`, the π-POS checkout). The row hides the coupon here until the cloud's own
REDEEMED state reaches the replica (`Replica.usable_coupons` offers only ISSUED coupons without such a
row). Before this module nothing but the π-POS refund path ever removed it, so a coupon the cloud gave
back to the member by any other route (an operator re-issuing it, the refund of another device's sale
that had won a double redemption, `unredeem` reached from elsewhere) stayed unusable here for good.

Rule: the row is released when sync applies a **newer** version of that coupon whose status is ISSUED,
and the redemption event has left the outbox (the cloud has decided on it: accepted, duplicate,
rejected or compensated).

- *Newer* comes from the replica's versions: Pull applies each stream's changes in ascending cloud seq
  past the stream's cursor, so every coupon version in a batch applied after the row was written is
  newer than any version the device had when the coupon was used. The rows are therefore read
  *before* the batch is applied (`apply_batch`); a row written meanwhile is not judged by this batch.
  A snapshot is the cloud's whole state at a seq past the cursor, so its rows count as newer too.
- *Event gone from the outbox*: while it is queued the cloud has not seen our use, so an ISSUED
  version (an unrelated edit of the coupon, another device's redemption given back) says nothing
  about it; releasing then would offer the coupon twice here.

A residual window, documented rather than closed: a Pull page fetched before the cloud recorded our
redemption but applied after its ack, carrying an ISSUED version written in between (another device's
redemption of the same coupon given back, or an operator's edit, within that sub-second gap), releases
the row; the next page brings the cloud's REDEEMED and the replica hides the coupon again. At worst a
second use in that gap is a double redemption, which the cloud reconciles as before.

The release runs in its own short transaction right after the apply (the daemon calls `apply_batch` /
`after_snapshot` of this module instead of the replica's directly). A crash in between leaves the row
in place — the safe side; the next newer ISSUED version releases it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from api.v1 import crm_pb2, sync_pb2
from sync.replica import Replica

_LOG = logging.getLogger(__name__)


def used_here(replica: Replica) -> dict[str, str]:
    """The coupons this device has a used-record for: coupon id → its redemption event id."""
    with replica.transaction() as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT coupon_id, event_id FROM local_redemptions")}


def release_given_back(replica: Replica, before: Mapping[str, str], issued: Iterable[str]) -> list[str]:
    """Drop the used-records of `issued` coupons (their newer version is ISSUED) that existed in
    `before` with the same event, whose event has left the outbox and which the replica still shows
    ISSUED; the coupon ids released."""
    candidates = [(cid, before[cid]) for cid in dict.fromkeys(issued) if cid in before]
    if not candidates:
        return []
    released = []
    with replica.transaction() as conn:
        for coupon_id, event_id in candidates:
            gone = conn.execute(
                "DELETE FROM local_redemptions WHERE coupon_id = ? AND event_id = ?"
                " AND NOT EXISTS (SELECT 1 FROM outbox WHERE event_id = ?)"
                " AND EXISTS (SELECT 1 FROM coupons WHERE coupon_id = ? AND status = ?)",
                (coupon_id, event_id, event_id, coupon_id, crm_pb2.COUPON_STATUS_ISSUED)).rowcount
            if gone:
                released.append(coupon_id)
    for coupon_id in released:
        _LOG.info("sync: coupon %s was given back by the cloud; usable at this device again", coupon_id)
    return released


def apply_batch(replica: Replica, batch: sync_pb2.StreamBatch) -> int:
    """`Replica.apply_batch`, then release the used-records the batch's newer ISSUED versions answer."""
    issued = [c.key for c in batch.changes if batch.stream == sync_pb2.STREAM_COUPONS and not c.deleted
              and c.coupon.status == crm_pb2.COUPON_STATUS_ISSUED]
    if not issued:  # most batches (every empty long-poll answer): no extra transaction
        return replica.apply_batch(batch)
    before = used_here(replica)
    applied = replica.apply_batch(batch)
    if before:
        release_given_back(replica, before, issued)
    return applied


def after_snapshot(replica: Replica, before: Mapping[str, str]) -> list[str]:
    """After a snapshot replaced the replica: release the used-records (read before it) of coupons it
    shows ISSUED."""
    if not before:
        return []
    with replica.transaction() as conn:
        marks = ",".join("?" * len(before))
        issued = [r[0] for r in conn.execute(
            f"SELECT coupon_id FROM coupons WHERE status = ? AND coupon_id IN ({marks})",
            (crm_pb2.COUPON_STATUS_ISSUED, *before))]
    return release_given_back(replica, before, issued)

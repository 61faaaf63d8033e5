"""The device outbox: events for the cloud, written in the same transaction as their local effect.

Every recorder below opens one replica transaction, makes the local change (a coupon marked used
here, a payment counted against the offline limit, a member's templates dropped on withdrawal…)
and appends the event, so a crash leaves both or neither. Each event gets a UUID (the cloud's
de-duplication key) and the next sequence of its stream (the cloud applies a stream in order).

Draining (`pending` → push → `settle`): rows leave the outbox only in `settle`, after the cloud's
ack, in one transaction with everything the ack brings: ACCEPTED/DUPLICATE delete the row, REJECTED
moves it to `quarantine` with the reason (so it never blocks the queue), compensations are stored
for the app to show. A crash before `settle` means the same events go again and come back DUPLICATE.

Enrollment events carry a face template, so their body is sealed with the template cipher.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.message import DecodeError

from api.v1 import sync_pb2
from sync.crypto import TemplateCipher
from sync.errors import ReplicaError, SyncError

#: The default stream of each event kind. Consent and enrollment share one: a withdrawal must not
#: overtake the enrollment it withdraws.
STREAMS = {"visit": "visits", "payment": "payments", "points": "points", "redemption": "coupons",
           "enrollment": "consent", "consent": "consent", "not_me": "feedback", "traffic": "traffic",
           "admin": "admin", "reconciliation": "reconcile"}  # admin: field-service audit (issue 8, device/admin)
#: Largest push (events, serialized bytes); the cloud refuses messages over 4 MiB.
PUSH_MAX_EVENTS = 500
PUSH_MAX_BYTES = 2 * 1024 * 1024
#: Largest single event: one that could never fit a push would block its stream forever.
MAX_EVENT_BYTES = 256 * 1024


def _now_ms() -> int:
    return int(time.time() * 1000)


def enqueue(conn: sqlite3.Connection, cipher: TemplateCipher, kind: str, payload: Any, *,
            stream: str | None = None, now_ms: int | None = None) -> str:
    """Inside an open replica transaction: append one event; returns its UUID."""
    if kind not in STREAMS:
        raise SyncError(f"unknown event kind {kind!r} (known: {', '.join(STREAMS)})")
    stream = stream or STREAMS[kind]
    event_id = str(uuid.uuid4())
    conn.execute("INSERT INTO outbox_streams (stream, last_seq) VALUES (?, 1) "
                 "ON CONFLICT(stream) DO UPDATE SET last_seq = last_seq + 1", (stream,))
    seq = int(conn.execute("SELECT last_seq FROM outbox_streams WHERE stream = ?", (stream,)).fetchone()[0])
    at = _now_ms() if now_ms is None else now_ms
    event = sync_pb2.DeviceEvent(event_id=event_id, stream=stream, stream_seq=seq, occurred_at_ms=at)
    getattr(event, kind).CopyFrom(payload)
    body = event.SerializeToString()
    if len(body) > MAX_EVENT_BYTES:
        raise SyncError(f"{kind} event of {len(body)} bytes is over the {MAX_EVENT_BYTES}-byte limit; not recorded")
    sealed = kind == "enrollment"
    if sealed:
        body = cipher.encrypt(f"outbox:{event_id}", body)
    conn.execute("INSERT INTO outbox (event_id, stream, stream_seq, kind, body, sealed, created_at_ms)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)", (event_id, stream, seq, kind, body, int(sealed), at))
    return event_id


class Outbox:
    """Recorders for the device app and the drain side for the sync daemon, over one replica."""

    def __init__(self, replica: Any, *, clock: Callable[[], float] = time.time) -> None:
        self.replica = replica
        self.clock = clock  # the device clock (tests skew it)

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def _record(self, kind: str, payload: Any, local: Callable[[sqlite3.Connection, str, int], None] | None = None,
                ) -> str:
        now = self._ms()
        with self.replica.transaction() as conn:
            event_id = enqueue(conn, self.replica.cipher, kind, payload, now_ms=now)
            if local is not None:
                local(conn, event_id, now)
        return event_id

    # -- recorders (the device app) ---------------------------------------------------------------

    def visit(self, member_id: str, store_id: str, score: float) -> str:
        """The mirror greeted a member."""
        return self._record("visit", sync_pb2.VisitEvent(member_id=member_id, store_id=store_id, score=score),
                            lambda c, e, t: c.execute("INSERT INTO local_visits VALUES (?, ?, ?, ?)",
                                                      (e, member_id, store_id, t)))

    def payment(self, payment_id: str, member_id: str, store_id: str, amount_cents: int, *, offline: bool = True) -> str:
        """A payment taken at the device (counted locally against the offline limit until acked)."""
        msg = sync_pb2.PaymentEvent(payment_id=payment_id, member_id=member_id, store_id=store_id,
                                    amount_cents=amount_cents, offline=offline)
        return self._record("payment", msg, lambda c, e, t: c.execute(
            "INSERT INTO local_payments VALUES (?, ?, ?, ?, ?)", (e, payment_id, member_id, amount_cents, t)))

    def points(self, member_id: str, delta: int, reason: str) -> str:
        """Points earned (or spent) at the device."""
        return self._record("points", sync_pb2.PointsEvent(member_id=member_id, delta=delta, reason=reason),
                            lambda c, e, t: c.execute("INSERT INTO local_points VALUES (?, ?, ?, ?)",
                                                      (e, member_id, delta, t)))

    def redemption(self, coupon_id: str, member_id: str, store_id: str, order_amount_cents: int) -> str:
        """A coupon used at the device: no longer offered here; the cloud reconciles it."""
        def local(c: sqlite3.Connection, e: str, t: int) -> None:
            if c.execute("SELECT 1 FROM local_redemptions WHERE coupon_id = ?", (coupon_id,)).fetchone():
                raise ReplicaError(f"coupon {coupon_id} was already used at this device")
            c.execute("INSERT INTO local_redemptions VALUES (?, ?, ?, ?)", (coupon_id, e, member_id, t))

        msg = sync_pb2.CouponRedemptionEvent(redemption_id=f"red-{uuid.uuid4()}", coupon_id=coupon_id,
                                             member_id=member_id, store_id=store_id,
                                             order_amount_cents=order_amount_cents)
        return self._record("redemption", msg, local)

    def enrollment(self, member_id: str, consent_id: str, template_id: str, model: str, vector: bytes,
                   consent_text_version: str = "", *, member_code: str = "", code_scanned_at_ms: int = 0) -> str:
        """A consented template taken here (sealed in the outbox; it comes back through Pull).

        ``member_code``: the membership QR token the member showed, with the time it was accepted here,
        so the cloud can check it again (signature, member, validity, used once by any device).
        """
        if not consent_id:
            raise SyncError("a face template needs the consent it was taken under")
        msg = sync_pb2.EnrollmentEvent(member_id=member_id, consent_id=consent_id, template_id=template_id,
                                       model=model, vector=vector, consent_text_version=consent_text_version,
                                       member_code=member_code, member_code_scanned_at_ms=code_scanned_at_ms)
        return self._record("enrollment", msg)

    def consent(self, member_id: str, granted: bool, consent_id: str = "", text_version: str = "") -> str:
        """Consent given or withdrawn here; a withdrawal drops the member's templates at once."""
        msg = sync_pb2.ConsentChangeEvent(member_id=member_id, granted=granted, consent_id=consent_id,
                                          text_version=text_version)
        local = None if granted else (lambda c, e, t: self.replica.delete_member_templates(c, member_id))
        return self._record("consent", msg, local)

    def traffic(self, store_id: str, window_start_ms: int, window_ms: int, counts: Mapping[str, int]) -> str:
        """Anonymous counts for one window."""
        return self._record("traffic", sync_pb2.TrafficAggregateEvent(
            store_id=store_id, window_start_ms=window_start_ms, window_ms=window_ms, counts=dict(counts)))

    # -- drain side (the sync daemon) -------------------------------------------------------------

    def depth(self) -> int:
        """Events waiting for an ack."""
        with self.replica._lock:
            return int(self.replica._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def pending(self, limit: int = PUSH_MAX_EVENTS, max_bytes: int = PUSH_MAX_BYTES) -> list[sync_pb2.DeviceEvent]:
        """The oldest events, in outbox order (so each stream stays in order), within the push limits."""
        with self.replica._lock:
            rows = self.replica._conn.execute(
                "SELECT event_id, body, sealed FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        out: list[sync_pb2.DeviceEvent] = []
        size = 0
        for event_id, body, sealed in rows:
            raw = self.replica.cipher.decrypt(f"outbox:{event_id}", body) if sealed else body
            size += len(raw)
            if out and size > max_bytes:
                break
            try:
                out.append(sync_pb2.DeviceEvent.FromString(raw))
            except DecodeError as err:
                raise ReplicaError(f"outbox event {event_id} is damaged: {err}") from err
        return out

    def settle(self, sent: Sequence[sync_pb2.DeviceEvent], response: sync_pb2.PushResponse) -> dict[str, int]:
        """Apply the cloud's answer to a push in one transaction; returns counts per outcome.

        An answer that does not ack exactly the events sent is refused (SyncError) and changes nothing.
        """
        ids = [e.event_id for e in sent]
        acks = {a.event_id: a for a in response.acks}
        if len(response.acks) != len(sent) or set(acks) != set(ids):
            raise SyncError(f"cloud answered {len(response.acks)} acks that do not match the {len(sent)} "
                            "events sent; nothing was removed from the outbox")
        by_id = {e.event_id: e for e in sent}
        counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "compensations": 0}
        now = self._ms()
        with self.replica.transaction() as conn:
            for event_id in ids:
                ack = acks[event_id]
                if ack.status == sync_pb2.ACK_STATUS_REJECTED:
                    ev = by_id[event_id]
                    row = conn.execute("SELECT body, sealed, kind FROM outbox WHERE event_id = ?",
                                       (event_id,)).fetchone()
                    if row is not None:
                        conn.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                     (event_id, ev.stream, ev.stream_seq, row[2], row[0], row[1],
                                      ack.reason or "rejected without a reason", now))
                    counts["rejected"] += 1
                elif ack.status in (sync_pb2.ACK_STATUS_ACCEPTED, sync_pb2.ACK_STATUS_DUPLICATE):
                    counts["accepted" if ack.status == sync_pb2.ACK_STATUS_ACCEPTED else "duplicate"] += 1
                else:
                    raise SyncError(f"cloud answered status {ack.status} for event {event_id}; nothing removed")
                conn.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
            for comp in response.compensations:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO compensations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (comp.compensation_id, comp.kind, comp.cause_event_id, comp.member_id, comp.coupon_id,
                     comp.amount_cents, comp.message, comp.created_at_ms, now))
                counts["compensations"] += cur.rowcount
        return counts

    # -- what the app shows -----------------------------------------------------------------------

    def quarantined(self) -> list[dict[str, Any]]:
        """Events the cloud rejected, with reasons, oldest first."""
        return self._rows("SELECT event_id, stream, stream_seq, kind, reason, quarantined_at_ms FROM quarantine "
                          "ORDER BY quarantined_at_ms, stream, stream_seq")

    def compensations(self, unseen_only: bool = False) -> list[dict[str, Any]]:
        """Corrections from the cloud (e.g. a double redemption), oldest first."""
        where = " WHERE seen = 0" if unseen_only else ""
        return self._rows(f"SELECT * FROM compensations{where} ORDER BY received_at_ms, compensation_id")

    def mark_seen(self, compensation_ids: Sequence[str]) -> None:
        """The staff saw these compensations."""
        with self.replica.transaction() as conn:
            conn.executemany("UPDATE compensations SET seen = 1 WHERE compensation_id = ?",
                             [(c,) for c in compensation_ids])

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        with self.replica._lock:
            return [dict(r) for r in self.replica._conn.execute(sql).fetchall()]


def write_status(replica: Any, status: Mapping[str, Any]) -> None:
    """Store the daemon's status for other processes (the app, `joyedge sync --status`)."""
    with replica.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO sync_status (key, value) VALUES (?, ?)",
                         [(k, json.dumps(v)) for k, v in status.items()])


def read_status(replica: Any) -> dict[str, Any]:
    """The daemon's last stored status plus the live outbox depth and quarantine size."""
    with replica._lock:
        rows = replica._conn.execute("SELECT key, value FROM sync_status").fetchall()
        depth = int(replica._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        quarantined = int(replica._conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])
        unseen = int(replica._conn.execute("SELECT count(*) FROM compensations WHERE seen = 0").fetchone()[0])
    out = {k: json.loads(v) for k, v in rows}
    out.update(outbox_depth=depth, quarantined=quarantined, compensations_unseen=unseen)
    return out

"""The cloud side of `Sync.Push`: device events applied exactly once, through the domain modules.

Exactly once
    Every event carries a UUID. `device_events` holds one row per event ever seen, with the ack the
    device got. A known id is answered from that row (DUPLICATE, or REJECTED with the same reason)
    and changes nothing. A new event's effect goes through the domain module that owns it, keyed by
    an id derived from the event (points entry_id = event id, payment txn_id, redemption_id,
    consent_id, template_id, the compensation a counter closed); those calls are idempotent on their
    key. So if the cloud dies between a domain write and the `device_events` row, the retry finds the
    domain row and records the ack without a second effect. Visits, "not me" feedback and traffic counts have no domain module: they
    are written in the same transaction as their `device_events` rows (INSERT OR IGNORE, so two
    concurrent retries of one push cannot double them either).

Rejection
    An event that can never apply (unknown member, member of another site, a template without a
    consent, an implausible time, a points spend beyond the balance, an enrollment whose membership
    QR does not hold — `member_qr.check_enrollment`, a reconciliation of a compensation issued to
    another device — `services/binding.event_refusal`) gets REJECTED with the reason;
    the device quarantines it and the queue moves on. A busy or failing database fails the whole
    push (UNAVAILABLE/INTERNAL): nothing is acked, the device retries.

Clock skew
    The device stamps events with its own clock and sends its clock reading with the push. When the
    two clocks differ by more than `SKEW_TOLERANCE_MS`, event times are shifted by the difference.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from api.v1 import marketing_pb2, sync_pb2
from cloud_stub import cli_reconcile, crm, member_qr, payment, validate
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.marketing import redeem
from cloud_stub.services import binding
from cloud_stub.storage import Storage, now_ms

#: Most events one push may carry (the device sends smaller batches).
MAX_PUSH_EVENTS = 2000
#: Clock differences below this are left alone (network time and jitter).
SKEW_TOLERANCE_MS = 2000

ACCEPTED = sync_pb2.ACK_STATUS_ACCEPTED
DUPLICATE = sync_pb2.ACK_STATUS_DUPLICATE
REJECTED = sync_pb2.ACK_STATUS_REJECTED
_REJECTABLE = (InvalidRequestError, NotFoundError, ConflictError)


def _check_request(device_id: str, site_id: str, events: Sequence[sync_pb2.DeviceEvent]) -> None:
    validate.ident(device_id, "device_id")
    validate.ident(site_id, "site_id")
    if len(events) > MAX_PUSH_EVENTS:
        raise InvalidRequestError(f"at most {MAX_PUSH_EVENTS} events per push, got {len(events)}")
    seen: set[str] = set()
    last: dict[str, int] = {}
    for ev in events:
        try:
            uuid.UUID(ev.event_id)
        except ValueError as err:
            raise InvalidRequestError(f"event_id {ev.event_id[:60]!r} is not a UUID") from err
        if ev.event_id in seen:
            raise InvalidRequestError(f"event {ev.event_id} appears twice in one push")
        seen.add(ev.event_id)
        if not ev.stream or len(ev.stream) > 64:
            raise InvalidRequestError(f"event {ev.event_id}: stream must be 1..64 characters")
        if ev.WhichOneof("payload") is None:
            raise InvalidRequestError(f"event {ev.event_id} has no payload")
        if ev.stream_seq <= last.get(ev.stream, 0):
            raise InvalidRequestError(
                f"event {ev.event_id}: stream {ev.stream!r} is out of order (seq {ev.stream_seq} after "
                f"{last.get(ev.stream, 0)}); send each stream in its outbox order"
            )
        last[ev.stream] = ev.stream_seq


def _compensation_msg(comp: dict[str, Any], cause: str) -> sync_pb2.Compensation:
    return sync_pb2.Compensation(
        compensation_id=comp["event_id"], kind=comp["kind"], cause_event_id=cause, member_id=comp["member_id"],
        coupon_id=comp["coupon_id"], amount_cents=int(comp["amount_cents"]), message=comp["message"],
        created_at_ms=int(comp["created_at_ms"]),
    )


class _Push:
    """One push being applied."""

    def __init__(self, storage: Storage, device_id: str, site_id: str, skew_ms: int) -> None:
        self.storage, self.device_id, self.site_id = storage, device_id, site_id
        self.shift = skew_ms if abs(skew_ms) > SKEW_TOLERANCE_MS else 0
        self.now = now_ms()
        self.member_sites: dict[str, str] = {}

    def at(self, ev: sync_pb2.DeviceEvent) -> int:
        return validate.event_time(ev.occurred_at_ms + self.shift, "occurred_at_ms", now=self.now)

    def own_member(self, member_id: str) -> str:
        validate.ident(member_id, "member_id")
        site = self.member_sites.get(member_id)
        if site is None:
            raise NotFoundError(f"member {member_id!r} does not exist")
        if site != self.site_id:
            raise InvalidRequestError(f"member {member_id!r} is not a member of site {self.site_id!r}")
        return member_id

    def check_member_code(self, ev: sync_pb2.DeviceEvent, p: sync_pb2.EnrollmentEvent, at: int) -> None:
        """The membership QR of an enrollment, checked again before anything is stored (member_qr.py);
        a refusal is kept for operators and answered with a compensation the device logs."""
        scanned = p.member_code_scanned_at_ms + self.shift if p.member_code_scanned_at_ms > 0 else 0
        try:
            member_qr.check_enrollment(self.storage, event_id=ev.event_id, device_id=self.device_id,
                                       site_id=self.site_id, member_id=p.member_id, code=p.member_code,
                                       scanned_at_ms=scanned, captured_at_ms=at, received_at_ms=self.now)
        except member_qr.EnrollmentRefused as refused:
            comp = member_qr.record_refusal(self.storage, refused, event_id=ev.event_id, device_id=self.device_id,
                                            site_id=self.site_id, member_id=p.member_id, occurred_at_ms=at)
            raise _RejectedWithCompensation(str(refused), comp) from refused

    def close_at_counter(self, p: sync_pb2.ReconciliationEvent) -> None:
        """The cashier's 已补收: close the flagged sale for the operator too — only the device it was
        issued to may (binding.EVENT_OWNERS); a close already there is kept and answered DUPLICATE."""
        if p.state not in cli_reconcile.COUNTER_NOTES:
            raise InvalidRequestError(f"reconciliation state {p.state[:40]!r} is not one a counter reports"
                                      f" ({', '.join(cli_reconcile.COUNTER_NOTES)})")
        by = validate.text(p.resolved_by, "resolved_by", max_len=64)
        at = validate.event_time(p.resolved_at_ms + self.shift, "resolved_at_ms", now=self.now)
        with self.storage.transaction("reconcile at counter") as conn:
            refusal = binding.event_refusal(conn, self.device_id, "reconciliation", p)
            if refusal:
                raise InvalidRequestError(refusal)
            kept = cli_reconcile.close_at_counter(conn, compensation_id=p.compensation_id,
                                                  device_id=self.device_id, by=by, at_ms=at, state=p.state)
        if kept:
            raise _Duplicate(kept)

    def apply(self, ev: sync_pb2.DeviceEvent) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """Apply one new event. Returns (reason or "", local row or None, compensation or None);
        raises a rejectable CloudError when the event can never apply."""
        kind = ev.WhichOneof("payload")
        at = self.at(ev)
        p = getattr(ev, kind)
        if kind == "visit":
            self.own_member(p.member_id)
            validate.ident(p.store_id, "store_id")
            return "", {"member_id": p.member_id, "store_id": p.store_id, "score": float(p.score), "at_ms": at}, None
        if kind == "not_me":
            self.own_member(p.member_id)
            return "", {"member_id": p.member_id, "template_id": p.template_id, "score": float(p.score),
                        "at_ms": at}, None
        if kind == "traffic":
            validate.ident(p.store_id, "store_id")
            if p.window_ms <= 0 or any(v < 0 for v in p.counts.values()):
                raise InvalidRequestError("traffic window must be positive and counts non-negative")
            return "", {"store_id": p.store_id, "window_start_ms": p.window_start_ms + self.shift,
                        "window_ms": p.window_ms, "counts": json.dumps(dict(sorted(p.counts.items())))}, None
        if kind == "admin":  # field-service audit (issue 8): stored as reported, one row per action
            validate.text(p.action, "action", max_len=64)
            if not p.action or not p.actor:
                raise InvalidRequestError("an admin action needs an action and an actor")
            return "", {"actor": p.actor[:300], "actor_serial": p.actor_serial[:64], "action": p.action,
                        "detail": p.detail[:2000], "outcome": p.outcome[:500], "at_ms": at}, None
        if kind == "points":
            crm.add_points(self.storage, entry_id=ev.event_id, member_id=self.own_member(p.member_id),
                           delta=p.delta, reason=p.reason or "device")
            return "", None, None
        if kind == "payment" and p.refund_of:
            # A refund the device recorded offline; it follows its sale in the "payments" stream, and
            # payment.refund is idempotent on the refund id (= the id an online refund would use).
            self.own_member(p.member_id)
            payment.refund(self.storage, refund_id=p.payment_id, payment_id=p.refund_of, amount_cents=p.amount_cents,
                           restore_redemption_id=p.restore_redemption_id)
            return "", None, None
        if kind == "payment":
            crm.record_transaction(self.storage, txn_id=p.payment_id or ev.event_id,
                                   member_id=self.own_member(p.member_id), store_id=p.store_id,
                                   amount_cents=p.amount_cents, at_ms=at)
            return "", None, None
        if kind == "redemption":
            self.own_member(p.member_id)
            (res,) = redeem.reconcile_offline(self.storage, self.device_id, [{
                "redemption_id": p.redemption_id, "coupon_id": p.coupon_id, "member_id": p.member_id,
                "store_id": p.store_id, "order_amount_cents": p.order_amount_cents, "redeemed_at_ms": at}])
            comp = res["compensation"]
            if res["outcome"] == marketing_pb2.RECONCILE_OUTCOME_REJECTED:
                raise _RejectedWithCompensation(res["reason"], comp)
            return res["reason"], None, comp
        if kind == "enrollment":
            self.own_member(p.member_id)
            self.check_member_code(ev, p, at)
            if p.consent_text_version:
                self.storage.add_consent(member_id=p.member_id, device_id=self.device_id,
                                         text_version=p.consent_text_version, agreed_at_ms=at,
                                         consent_id=p.consent_id or None)
            validate.ident(p.template_id, "template_id")
            self.storage.add_template(member_id=p.member_id, consent_id=p.consent_id, model=p.model,
                                      vector=p.vector, template_id=p.template_id, created_at_ms=at)
            return "", None, None
        if kind == "reconciliation":
            self.close_at_counter(p)
            return "", None, None
        if kind == "consent":
            self.own_member(p.member_id)
            if p.granted:
                self.storage.add_consent(member_id=p.member_id, device_id=self.device_id,
                                         text_version=p.text_version, agreed_at_ms=at,
                                         consent_id=p.consent_id or None)
            else:
                self.storage.withdraw_consent(p.member_id)
            return "", None, None
        raise InvalidRequestError(f"event kind {kind!r} is not supported")  # pragma: no cover


class _Duplicate(ConflictError):
    """Its effect is already there (another way): answered DUPLICATE with the reason, nothing changed."""


class _RejectedWithCompensation(ConflictError):
    def __init__(self, reason: str, comp: dict[str, Any] | None) -> None:
        super().__init__(reason)
        self.comp = comp


def apply_push(
    storage: Storage, *, device_id: str, site_id: str, events: Sequence[sync_pb2.DeviceEvent], device_time_ms: int,
) -> sync_pb2.PushResponse:
    """Apply a push; one ack per event in request order, plus compensations (see module docstring).

    Raises InvalidRequestError for a malformed request (nothing applied) and StorageError/StorageBusyError
    when the database fails (the device retries; what was applied is idempotent on the retry).
    """
    _check_request(device_id, site_id, events)
    now = now_ms()
    skew = now - device_time_ms if device_time_ms > 0 else 0
    response = sync_pb2.PushResponse(server_time_ms=now, clock_skew_ms=skew)
    ids = [ev.event_id for ev in events]
    known: dict[str, Any] = {}
    comps: dict[str, dict[str, Any]] = {}
    members = {getattr(ev, ev.WhichOneof("payload")).member_id for ev in events
               if ev.WhichOneof("payload") not in ("traffic", "admin", "reconciliation")}
    push = _Push(storage, device_id, site_id, skew)
    with storage.transaction("read known events", write=False) as conn:
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT * FROM device_events WHERE event_id IN ({marks})", chunk):
                known[row["event_id"]] = row
        comp_ids = [r["compensation_id"] for r in known.values() if r["compensation_id"]]
        for cid in comp_ids:
            row = conn.execute("SELECT * FROM compensations WHERE event_id = ?", (cid,)).fetchone()
            if row is not None:
                comps[cid] = dict(row)
        mlist = sorted(m for m in members if m)
        for i in range(0, len(mlist), 500):
            chunk = mlist[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT member_id, site_id FROM members WHERE member_id IN ({marks})", chunk):
                push.member_sites[row[0]] = row[1]

    records: list[tuple[Any, ...]] = []
    local: list[tuple[str, sync_pb2.DeviceEvent, dict[str, Any]]] = []
    for ev in events:
        old = known.get(ev.event_id)
        if old is not None:
            if old["device_id"] != device_id:
                response.acks.add(event_id=ev.event_id, status=REJECTED,
                                  reason="this event id was pushed by another device")
                continue
            status = REJECTED if old["status"] == REJECTED else DUPLICATE
            response.acks.add(event_id=ev.event_id, status=status, reason=old["reason"])
            if old["compensation_id"] in comps:
                response.compensations.append(_compensation_msg(comps[old["compensation_id"]], ev.event_id))
            continue
        kind = ev.WhichOneof("payload")
        comp: dict[str, Any] | None = None
        try:
            reason, row, comp = push.apply(ev)
            status = ACCEPTED
        except _Duplicate as err:
            status, reason, row = DUPLICATE, str(err), None
        except _RejectedWithCompensation as err:
            status, reason, row, comp = REJECTED, str(err), None, err.comp
        except _REJECTABLE as err:
            status, reason, row = REJECTED, str(err), None
        if row is not None:
            local.append((kind, ev, row))
        if comp is not None:
            response.compensations.append(_compensation_msg(comp, ev.event_id))
        response.acks.add(event_id=ev.event_id, status=status, reason=reason)
        records.append((ev.event_id, device_id, site_id, ev.stream, ev.stream_seq, kind,
                        ev.occurred_at_ms + push.shift, now, status, reason, comp["event_id"] if comp else ""))
    if records:
        with storage.transaction("record device events") as conn:
            for kind, ev, row in local:
                _insert_local(conn, kind, ev.event_id, device_id, row)
            conn.executemany(
                "INSERT OR IGNORE INTO device_events (event_id, device_id, site_id, stream, stream_seq, kind,"
                " occurred_at_ms, received_at_ms, status, reason, compensation_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", records,
            )
    return response


def _insert_local(conn: Any, kind: str, event_id: str, device_id: str, row: dict[str, Any]) -> None:
    row = {**row, "event_id": event_id, "device_id": device_id}
    if kind == "visit":
        conn.execute("INSERT OR IGNORE INTO visits (event_id, device_id, member_id, store_id, score, at_ms)"
                     " VALUES (:event_id, :device_id, :member_id, :store_id, :score, :at_ms)", row)
    elif kind == "not_me":
        conn.execute("INSERT OR IGNORE INTO face_feedback (event_id, device_id, member_id, template_id, score, at_ms)"
                     " VALUES (:event_id, :device_id, :member_id, :template_id, :score, :at_ms)", row)
    elif kind == "admin":
        conn.execute("INSERT OR IGNORE INTO admin_audit (event_id, device_id, actor, actor_serial, action, detail,"
                     " outcome, at_ms) VALUES (:event_id, :device_id, :actor, :actor_serial, :action, :detail,"
                     " :outcome, :at_ms)", row)
    else:
        conn.execute("INSERT OR IGNORE INTO traffic (event_id, device_id, store_id, window_start_ms, window_ms, counts)"
                     " VALUES (:event_id, :device_id, :store_id, :window_start_ms, :window_ms, :counts)", row)

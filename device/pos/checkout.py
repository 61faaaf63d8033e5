"""The π-POS checkout state machine: cart → face → (phone) → confirm → paying → paid | refused.

    idle ──amount / scan──► cart ──刷脸支付──► face ──live, one clear match ≥ payment threshold──► confirm
                             │                  │ ──close candidates or score < payment threshold──► phone
                             └──cash──► paid    └──spoof / nobody / weak──► refused         phone ──4 digits──► confirm
    confirm ──customer confirms──► paying ──online approved / offline within limit──► paid
                                          └──declined / over limit──► refused

Face alone never pays: a payment needs a live face, a match, and the customer's own confirmation on
the customer screen (plus the phone's last 4 digits whenever the match is not clear-cut). Each face
attempt has one idempotency key; a second press of "confirm" while paying or after paying returns the
same outcome and never authorises again. Every decision is written to the audit log, and a sale,
its audit entries and its outbox events commit in one transaction.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from api.v1 import sync_pb2
from device.gallery import Candidate
from device.pos import store
from device.pos.audit import ANCHOR_CHARS, AuditLog
from device.pos.payment import Evidence, PaymentError, PaymentGateway, PaymentOffline
from sync.errors import SyncError
from sync.outbox import enqueue

# Candidates within this score of the best are "close": the phone digits must tell them apart.
CLOSE_MARGIN = 0.03
MAX_PHONE_TRIES = 3
POINTS_REASON = "刷脸积分"


@dataclass(frozen=True)
class FaceResult:
    """What the face check saw: liveness and the gallery's best members (best first)."""

    live: bool
    method: str  # "depth" | "challenge"
    detail: str
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    """Thresholds of the device's identity config."""

    match_threshold: float
    payment_threshold: float
    min_margin: float


class Checkout:
    """One counter's checkout. Thread-safe: UI actions and the face loop call it from several threads."""

    def __init__(self, *, replica: Any, audit: AuditLog, gateway: PaymentGateway | None, policy: Policy,
                 device_id: str, store_id: str) -> None:
        self.replica = replica
        self.audit = audit
        self.gateway = gateway
        self.policy = policy
        self.device_id = device_id
        self.store_id = store_id
        self._lock = threading.RLock()
        self.version = 0  # bumped on every change; the app republishes views when it moves
        self._reset()

    def _reset(self) -> None:
        self.state = "idle"
        self.sale_id = f"sale-{uuid.uuid4()}"
        self.items: list[dict[str, Any]] = []
        self.manual_cents = 0
        self.attempt = 0
        self.key = ""
        self.candidates: list[Candidate] = []
        self.member_id: str | None = None
        self.face: FaceResult | None = None
        self.phone_confirmed = False
        self.phone_tries = 0
        self.coupon: dict[str, Any] | None = None
        self.message = ""
        self.challenge = ""
        self.sale: dict[str, Any] | None = None
        self.version += 1

    # -- the cart (cashier) ------------------------------------------------------------------------

    @property
    def amount_cents(self) -> int:
        """Total of the scanned items plus the amount typed by the cashier."""
        return self.manual_cents + sum(int(i["cents"]) for i in self.items)

    @property
    def discount_cents(self) -> int:
        """What the applied coupon takes off."""
        return int(self.coupon["value_cents"]) if self.coupon else 0

    @property
    def due_cents(self) -> int:
        """What the customer pays."""
        return self.amount_cents - self.discount_cents

    def _changed(self) -> None:
        self.version += 1

    def new_sale(self) -> None:
        """Start over (after a sale, a refusal, or a cancel by the cashier)."""
        with self._lock:
            if self.state in ("face", "phone", "confirm"):
                self.audit.record("cancel", {"sale_id": self.sale_id, "state": self.state, "by": "cashier"})
            if self.state != "paying":
                self._reset()

    def set_amount(self, cents: int) -> None:
        """The cashier typed an amount (replaces an earlier typed amount)."""
        with self._lock:
            self._editable()
            if not 0 <= int(cents) <= 100_000_000:
                raise PaymentError(f"amount {cents} cents is out of range")
            self.manual_cents = int(cents)
            self.state = "cart" if self.amount_cents > 0 else "idle"
            self._changed()

    def add_item(self, name: str, cents: int, code: str = "") -> None:
        """A scanned item."""
        with self._lock:
            self._editable()
            if cents <= 0:
                raise PaymentError(f"item {name!r} has no price")
            self.items.append({"name": name, "cents": int(cents), "code": code})
            self.state = "cart"
            self._changed()

    def _editable(self) -> None:
        if self.state in ("paid", "refused"):
            self._reset()
        if self.state not in ("idle", "cart"):
            raise PaymentError(f"the cart cannot change while the checkout is {self.state}")

    # -- pay by face -------------------------------------------------------------------------------

    def begin_face(self) -> str:
        """The customer chose 刷脸支付: a new face attempt with a new idempotency key; returns the key."""
        with self._lock:
            if self.state not in ("cart", "refused") or self.amount_cents <= 0:
                raise PaymentError(f"face pay needs an amount first (checkout is {self.state})")
            self.attempt += 1
            self.key = f"{self.sale_id}.{self.attempt}"
            self.state, self.message, self.challenge = "face", "", ""
            self.candidates, self.member_id, self.face, self.coupon = [], None, None, None
            self.phone_confirmed, self.phone_tries = False, 0
            self._changed()
            return self.key

    def set_challenge(self, action: str) -> None:
        """The liveness challenge asks for ``action`` now (shown on the customer screen)."""
        with self._lock:
            if self.state == "face" and action != self.challenge:
                self.challenge = action
                self._changed()

    def face_result(self, result: FaceResult) -> str:
        """The face check finished: decide the next state (see the module docstring); returns it."""
        with self._lock:
            if self.state != "face":
                return self.state
            self.face = result
            best = result.candidates[0] if result.candidates else None
            p = self.policy
            close = [c for c in result.candidates
                     if c.score >= p.match_threshold and best is not None and best.score - c.score < CLOSE_MARGIN]
            entry = {"sale_id": self.sale_id, "key": self.key, "liveness": result.live, "method": result.method,
                     "detail": result.detail, "candidates": [[c.member_id, round(c.score, 4)] for c in result.candidates[:3]],
                     "thresholds": [round(p.match_threshold, 4), round(p.payment_threshold, 4)]}
            if not result.live:
                return self._refuse("face", entry, "活体检测未通过 · liveness check failed")
            # A runner-up above the match threshold within CLOSE_MARGIN (> min_margin) is in `close`, so
            # the open-set margin is enforced by asking for the phone digits rather than by refusing.
            if best is None or best.score < p.match_threshold:
                return self._refuse("face", entry, "未识别到会员 · face not recognised, please pay another way")
            self.candidates = close
            if len(close) > 1 or best.score < p.payment_threshold:
                self.state = "phone"
                self.audit.record("face", entry | {"decision": "phone"})
            else:
                self.member_id = best.member_id
                self.audit.record("face", entry | {"decision": "match", "member_id": best.member_id})
                self._to_confirm()
            self._changed()
            return self.state

    def enter_phone(self, digits: str) -> str:
        """The customer typed the last 4 digits of their phone; returns the new state."""
        with self._lock:
            if self.state != "phone":
                return self.state
            digits = str(digits).strip()
            self.phone_tries += 1
            matches = [c for c in self.candidates
                       if len(digits) == 4 and (self.replica.member(c.member_id) or {}).get("phone_last4") == digits]
            entry = {"sale_id": self.sale_id, "key": self.key, "try": self.phone_tries, "ok": len(matches) == 1}
            if len(matches) == 1:
                self.member_id = matches[0].member_id
                self.phone_confirmed = True
                self.audit.record("phone", entry | {"member_id": self.member_id})
                self._to_confirm()
            elif self.phone_tries >= MAX_PHONE_TRIES:
                return self._refuse("phone", entry, "手机尾号不符 · phone digits do not match, please pay another way")
            else:
                self.audit.record("phone", entry)
                self.message = "手机尾号不符，请重新输入 · digits do not match, try again"
            self._changed()
            return self.state

    def _to_confirm(self) -> None:
        self.state, self.message, self.challenge = "confirm", "", ""
        self.coupon = self._best_coupon()

    def _best_coupon(self) -> dict[str, Any] | None:
        # The coupon that takes off the most for this amount; the replica lists them soonest-expiring
        # first, so ties go to the one that would expire first.
        best = None
        for c in self.replica.usable_coupons(self.member_id, self.store_id):
            value, floor = int(c["value_cents"]), int(c["threshold_cents"] or 0)
            if self.amount_cents >= floor and 0 < value < self.amount_cents and (
                    best is None or value > int(best["value_cents"])):
                best = c
        return best

    def _refuse(self, step: str, entry: dict[str, Any], message: str) -> str:
        self.state, self.message, self.challenge = "refused", message, ""
        self.audit.record(step, entry | {"decision": "refused", "reason": message})
        self._changed()
        return self.state

    def confirm(self, by: str = "customer") -> dict[str, Any]:
        """The customer confirmed on their screen: authorise and book the sale; returns the outcome.

        A second press (or a retry) of the same attempt returns the first outcome and pays nothing more.
        """
        with self._lock:
            if self.state != "confirm":
                return self.outcome()
            if by != "customer":
                raise PaymentError("only the customer confirms a face payment, on the customer screen")
            self.state = "paying"
            self._changed()
            key, member, due = self.key, self.member_id, self.due_cents
            assert member is not None and self.face is not None
            evidence = Evidence(self.face.candidates[0].score if self.face.candidates else 0.0,
                                self.face.live, self.face.method, self.phone_confirmed)
            self.audit.record("confirm", {"sale_id": self.sale_id, "key": key, "by": by, "member_id": member,
                                          "due_cents": due})
        # The network call runs outside the lock so the screens keep updating ("支付中…").
        mode, payment_id, decline = self._authorize(key, member, due, evidence)
        with self._lock:
            if decline:
                self.audit.record("authorize", {"sale_id": self.sale_id, "key": key, "mode": mode,
                                                "approved": False, "reason": decline})
                self.state, self.message = "refused", decline
                self._changed()
                return self.outcome()
            try:
                self._book(method="face", mode=mode, payment_id=payment_id, evidence=evidence)
            except (PaymentError, SyncError) as err:
                # Nothing was booked (one transaction). An online payment already captured is named in
                # the audit entry so the service desk can refund it.
                self.audit.record("authorize", {"sale_id": self.sale_id, "key": key, "mode": mode,
                                                "approved": True, "payment_id": payment_id, "booked": False,
                                                "error": str(err)})
                self.state, self.message = "refused", f"记账失败 · could not book the sale: {err}"
                self._changed()
            return self.outcome()

    def _authorize(self, key: str, member: str, due: int, ev: Evidence) -> tuple[str, str, str]:
        """(mode, payment_id, decline reason or "")."""
        if self.gateway is not None:
            try:
                auth = self.gateway.authorize(key, member, due, ev)
                if not auth.approved:
                    return "online", auth.payment_id, f"支付被拒 · declined: {auth.decline_reason or auth.decline_code}"
                self.gateway.capture(auth.payment_id)
                self._refresh_credit(member)
                return "online", auth.payment_id, ""
            except PaymentOffline:
                pass  # decided offline below
            except PaymentError as err:
                return "online", "", f"支付失败 · payment failed: {err}"
        limit = store.credit(self.replica, member)
        if limit is None:
            return "offline", "", "离线额度未知 · no offline limit known for this member; pay another way"
        with self.replica._lock:
            outstanding = store.offline_outstanding(self.replica._conn, member)
        if outstanding + due > int(limit["offline_limit_cents"]):
            return "offline", "", (f"超出离线额度 · over the offline limit ({limit['offline_limit_cents'] / 100:.2f}, "
                                   f"{outstanding / 100:.2f} not yet settled)")
        return "offline", f"off-{key}", ""

    def _refresh_credit(self, member: str) -> None:
        try:
            grade, limit = self.gateway.credit(member)  # type: ignore[union-attr]
        except PaymentError:
            return  # the last known limit stays; the background refresh tries again
        store.put_credit(self.replica, member, grade, limit)

    def pay_cash(self, by: str = "cashier") -> dict[str, Any]:
        """A cash sale: booked at once (the app opens the drawer and prints the receipt)."""
        with self._lock:
            if self.state == "paid":
                return self.outcome()
            if self.state not in ("cart", "refused") or self.amount_cents <= 0:
                raise PaymentError(f"cash needs an amount first (checkout is {self.state})")
            self.key, self.member_id, self.coupon = f"{self.sale_id}.cash", None, None
            self._book(method="cash", mode="cash", payment_id="", evidence=None, by=by)
            return self.outcome()

    def _book(self, *, method: str, mode: str, payment_id: str, evidence: Evidence | None, by: str = "customer") -> None:
        """The sale, its audit entry and its outbox events in one transaction."""
        now = int(time.time() * 1000)
        member, due = self.member_id, self.due_cents
        points = due // 100 if member else 0
        sale = {"sale_id": self.sale_id, "created_at_ms": now, "items": self.items + (
                    [{"name": "金额", "cents": self.manual_cents, "code": ""}] if self.manual_cents else []),
                "amount_cents": self.amount_cents, "discount_cents": self.discount_cents, "paid_cents": due,
                "method": method, "mode": mode, "member_id": member, "payment_id": payment_id or None,
                "payment_event_id": None, "coupon_id": self.coupon["coupon_id"] if self.coupon else None,
                "points": points, "idempotency_key": self.key, "status": "paid",
                "coupon_threshold_cents": int(self.coupon["threshold_cents"] or 0) if self.coupon else 0}
        with self.replica.transaction() as conn:
            if mode == "offline":
                # Re-checked inside the transaction: two counters must not both spend the last of a limit.
                limit = store.credit(self.replica, member) or {"offline_limit_cents": 0}
                if store.offline_outstanding(conn, member) + due > int(limit["offline_limit_cents"]):
                    raise PaymentError("the offline limit was used up meanwhile; pay another way")
                ev = enqueue(conn, self.replica.cipher, "payment", sync_pb2.PaymentEvent(
                    payment_id=payment_id, member_id=member, store_id=self.store_id, amount_cents=due, offline=True),
                    now_ms=now)
                conn.execute("INSERT INTO local_payments VALUES (?, ?, ?, ?, ?)", (ev, payment_id, member, due, now))
                sale["payment_event_id"] = ev
            if points:
                ev = enqueue(conn, self.replica.cipher, "points", sync_pb2.PointsEvent(
                    member_id=member, delta=points, reason=POINTS_REASON), now_ms=now)
                conn.execute("INSERT INTO local_points VALUES (?, ?, ?, ?)", (ev, member, points, now))
            if self.coupon:
                cid = self.coupon["coupon_id"]
                ev = enqueue(conn, self.replica.cipher, "redemption", sync_pb2.CouponRedemptionEvent(
                    redemption_id=f"red-{self.sale_id}", coupon_id=cid, member_id=member, store_id=self.store_id,
                    order_amount_cents=self.amount_cents), now_ms=now)
                conn.execute("INSERT INTO local_redemptions VALUES (?, ?, ?, ?)", (cid, ev, member, now))
            digest = self.audit.append(conn, "sale", {
                "sale_id": self.sale_id, "key": self.key, "method": method, "mode": mode, "member_id": member,
                "payment_id": payment_id, "amount_cents": sale["amount_cents"], "paid_cents": due,
                "coupon_id": sale["coupon_id"], "points": points, "by": by,
                "evidence": None if evidence is None else evidence.__dict__}, now)
            sale["anchor"] = digest[:ANCHOR_CHARS]
            store.insert_sale(conn, sale)
        self.sale = store.sale(self.replica, self.sale_id)
        self.state, self.message = "paid", ""
        self._changed()

    def outcome(self) -> dict[str, Any]:
        """The checkout as a plain dict (state, amounts, message, the sale once paid)."""
        with self._lock:
            return {"state": self.state, "sale_id": self.sale_id, "key": self.key, "amount_cents": self.amount_cents,
                    "discount_cents": self.discount_cents, "due_cents": self.due_cents, "member_id": self.member_id,
                    "message": self.message, "sale": self.sale}

"""Online authorisation against the cloud's Payment service, and the JOY-CRED offline limit.

`PaymentGateway` is the one boundary where gRPC errors become π-POS errors: UNAVAILABLE and
DEADLINE_EXCEEDED (the cloud cannot be reached, or did not answer in time) become
`PaymentOffline`, so the checkout falls back to the offline limit; anything else is `PaymentError`.

Why falling back after a timeout cannot charge twice: Authorize only *reserves*; money moves at
Capture. If an Authorize timed out after the cloud approved it, that authorisation is never captured
(the device took the payment offline instead and reports it through the outbox), so it lapses.
Retrying with the same idempotency key returns the cloud's stored answer, never a second payment.

The channel follows the device's certificate (`sync.channel.DeviceChannel`): after a rotation by the
sync daemon or admin-serve the next call presents the new certificate, and a call refused
UNAUTHENTICATED goes once more when the identity files hold a newer one, so pay-by-face does not stop
when the cloud revokes the old certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from api.v1 import credit_pb2, credit_pb2_grpc, payment_pb2, payment_pb2_grpc
from device.errors import DeviceError
from sync.channel import DeviceChannel

AUTHORIZE_DEADLINE_S = 4.0  # a customer is waiting at the counter: fall back to offline quickly
CALL_DEADLINE_S = 5.0
_OFFLINE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# After the cloud comes back, a channel in reconnect backoff would fail every call at once for up
# to gRPC's default 2 min; keep the backoff short and let each call wait (within its deadline) for
# the connection, so the first sale after an outage goes online again.
RECONNECT_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.min_reconnect_backoff_ms", 250),
                     ("grpc.max_reconnect_backoff_ms", 2000)]


class PaymentError(DeviceError):
    """The cloud refused a payment call (not a network problem)."""


class PaymentOffline(PaymentError):
    """The cloud could not be reached; an offline decision is needed."""


@dataclass(frozen=True)
class Authorization:
    """The cloud's answer to Authorize."""

    approved: bool
    payment_id: str
    decline_code: str = ""
    decline_reason: str = ""


@dataclass(frozen=True)
class Evidence:
    """What the device saw, sent with the authorisation and written to the audit log."""

    match_score: float
    liveness_passed: bool
    liveness_method: str
    phone_last4_confirmed: bool


class PaymentGateway:
    """gRPC stubs for Payment and Credit over one channel (mTLS that follows the device's certificate,
    or plain text on loopback)."""

    def __init__(self, channel: grpc.Channel | DeviceChannel, *, device_id: str, store_id: str) -> None:
        self.channel = channel if isinstance(channel, DeviceChannel) else DeviceChannel.fixed(channel)
        self.device_id = device_id
        self.store_id = store_id

    @classmethod
    def connect(cls, target: str, *, device_id: str, store_id: str, insecure: bool = False,
                identity_dir: Any = None) -> PaymentGateway:
        """A gateway to ``target``: mTLS with the enrolled identity, or plain text on loopback."""
        if insecure:
            host = target.rsplit(":", 1)[0].strip("[]")
            if not (host in ("localhost", "::1") or host.startswith("127.")):
                raise PaymentError(f"refusing plain-text payments to {target}: allowed on loopback only")
            channel = grpc.insecure_channel(target, options=RECONNECT_OPTIONS)
        else:
            from sync.errors import SyncError

            try:
                channel = DeviceChannel.follow(identity_dir, target, options=RECONNECT_OPTIONS)
            except SyncError as err:
                raise PaymentError(f"no device identity for payments: {err} (run `joyedge enroll`)") from err
        return cls(channel, device_id=device_id, store_id=store_id)

    def _call(self, stub: Callable[[grpc.Channel], Any], name: str, request: Any, timeout: float) -> Any:
        try:
            return self.channel.call(stub, lambda s: getattr(s, name)(request, timeout=timeout, wait_for_ready=True))
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            detail = err.details() if hasattr(err, "details") else str(err)
            if code in _OFFLINE_CODES:
                raise PaymentOffline(f"cloud unreachable for {name} ({code.name}): {detail}") from err
            raise PaymentError(f"cloud refused {name} ({code.name if code else 'UNKNOWN'}): {detail}") from err

    def authorize(self, key: str, member_id: str, amount_cents: int, evidence: Evidence) -> Authorization:
        """Authorize under ``key`` (same key + same request = the same answer)."""
        req = payment_pb2.AuthorizeRequest(
            idempotency_key=key, member_id=member_id, device_id=self.device_id, store_id=self.store_id,
            amount_cents=amount_cents, evidence=payment_pb2.PaymentEvidence(
                match_score=round(float(evidence.match_score), 6), liveness_passed=evidence.liveness_passed,
                liveness_method=evidence.liveness_method,
                phone_last4_confirmed=evidence.phone_last4_confirmed))
        res = self._call(payment_pb2_grpc.PaymentStub, "Authorize", req, AUTHORIZE_DEADLINE_S)
        return Authorization(res.approved, res.payment_id, res.decline_code, res.decline_reason)

    def capture(self, payment_id: str) -> None:
        """Capture the whole authorised amount (idempotent in the cloud)."""
        self._call(payment_pb2_grpc.PaymentStub, "Capture", payment_pb2.CaptureRequest(payment_id=payment_id),
                   CALL_DEADLINE_S)

    def refund(self, refund_id: str, payment_id: str, amount_cents: int, restore_redemption_id: str = "") -> None:
        """Refund (idempotent on ``refund_id``); ``restore_redemption_id`` gives the sale's coupon back."""
        self._call(payment_pb2_grpc.PaymentStub, "Refund", payment_pb2.RefundRequest(
            refund_id=refund_id, payment_id=payment_id, amount_cents=amount_cents,
            restore_redemption_id=restore_redemption_id), CALL_DEADLINE_S)

    def credit(self, member_id: str) -> tuple[str, int]:
        """(JOY-CRED grade, offline limit in cents) of a member."""
        rep = self._call(credit_pb2_grpc.CreditStub, "GetCredit",
                         credit_pb2.GetCreditRequest(member_id=member_id), CALL_DEADLINE_S)
        return rep.grade, int(rep.offline_limit_cents)

    def close(self) -> None:
        """Close the channel (and any a certificate change retired)."""
        self.channel.close()

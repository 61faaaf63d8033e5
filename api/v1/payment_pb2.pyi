from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_AUTHORIZED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_DECLINED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CAPTURED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REFUNDED: _ClassVar[PaymentStatus]
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_AUTHORIZED: PaymentStatus
PAYMENT_STATUS_DECLINED: PaymentStatus
PAYMENT_STATUS_CAPTURED: PaymentStatus
PAYMENT_STATUS_REFUNDED: PaymentStatus

class PaymentEvidence(_message.Message):
    __slots__ = ("match_score", "liveness_passed", "liveness_method", "phone_last4_confirmed")
    MATCH_SCORE_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_PASSED_FIELD_NUMBER: _ClassVar[int]
    LIVENESS_METHOD_FIELD_NUMBER: _ClassVar[int]
    PHONE_LAST4_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    match_score: float
    liveness_passed: bool
    liveness_method: str
    phone_last4_confirmed: bool
    def __init__(self, match_score: _Optional[float] = ..., liveness_passed: _Optional[bool] = ..., liveness_method: _Optional[str] = ..., phone_last4_confirmed: _Optional[bool] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("idempotency_key", "member_id", "device_id", "store_id", "amount_cents", "evidence")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    member_id: str
    device_id: str
    store_id: str
    amount_cents: int
    evidence: PaymentEvidence
    def __init__(self, idempotency_key: _Optional[str] = ..., member_id: _Optional[str] = ..., device_id: _Optional[str] = ..., store_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., evidence: _Optional[_Union[PaymentEvidence, _Mapping]] = ...) -> None: ...

class PaymentResult(_message.Message):
    __slots__ = ("payment_id", "status", "approved", "decline_code", "decline_reason", "member_id", "device_id", "amount_cents", "captured_cents", "refunded_cents", "created_at_ms")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_REASON_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_CENTS_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_CENTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    status: PaymentStatus
    approved: bool
    decline_code: str
    decline_reason: str
    member_id: str
    device_id: str
    amount_cents: int
    captured_cents: int
    refunded_cents: int
    created_at_ms: int
    def __init__(self, payment_id: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., approved: _Optional[bool] = ..., decline_code: _Optional[str] = ..., decline_reason: _Optional[str] = ..., member_id: _Optional[str] = ..., device_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., captured_cents: _Optional[int] = ..., refunded_cents: _Optional[int] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class CaptureRequest(_message.Message):
    __slots__ = ("payment_id", "amount_cents")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    amount_cents: int
    def __init__(self, payment_id: _Optional[str] = ..., amount_cents: _Optional[int] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("refund_id", "payment_id", "amount_cents", "restore_redemption_id")
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    refund_id: str
    payment_id: str
    amount_cents: int
    restore_redemption_id: str
    def __init__(self, refund_id: _Optional[str] = ..., payment_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., restore_redemption_id: _Optional[str] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_id",)
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    def __init__(self, payment_id: _Optional[str] = ...) -> None: ...

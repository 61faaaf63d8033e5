from api.v1 import crm_pb2 as _crm_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RedemptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDEMPTION_STATUS_UNSPECIFIED: _ClassVar[RedemptionStatus]
    REDEMPTION_STATUS_ACCEPTED: _ClassVar[RedemptionStatus]
    REDEMPTION_STATUS_CONFLICT: _ClassVar[RedemptionStatus]

class ReconcileOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILE_OUTCOME_UNSPECIFIED: _ClassVar[ReconcileOutcome]
    RECONCILE_OUTCOME_ACCEPTED: _ClassVar[ReconcileOutcome]
    RECONCILE_OUTCOME_DUPLICATE: _ClassVar[ReconcileOutcome]
    RECONCILE_OUTCOME_CONFLICT: _ClassVar[ReconcileOutcome]
    RECONCILE_OUTCOME_REJECTED: _ClassVar[ReconcileOutcome]
REDEMPTION_STATUS_UNSPECIFIED: RedemptionStatus
REDEMPTION_STATUS_ACCEPTED: RedemptionStatus
REDEMPTION_STATUS_CONFLICT: RedemptionStatus
RECONCILE_OUTCOME_UNSPECIFIED: ReconcileOutcome
RECONCILE_OUTCOME_ACCEPTED: ReconcileOutcome
RECONCILE_OUTCOME_DUPLICATE: ReconcileOutcome
RECONCILE_OUTCOME_CONFLICT: ReconcileOutcome
RECONCILE_OUTCOME_REJECTED: ReconcileOutcome

class Campaign(_message.Message):
    __slots__ = ("campaign_id", "site_id", "name", "expression", "title", "kind", "value_cents", "threshold_cents", "store_ids", "valid_from_ms", "valid_until_ms", "per_member_limit", "usage_hint")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_CENTS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_CENTS_FIELD_NUMBER: _ClassVar[int]
    STORE_IDS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_MS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    PER_MEMBER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    USAGE_HINT_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    site_id: str
    name: str
    expression: str
    title: str
    kind: _crm_pb2.CouponKind
    value_cents: int
    threshold_cents: int
    store_ids: _containers.RepeatedScalarFieldContainer[str]
    valid_from_ms: int
    valid_until_ms: int
    per_member_limit: int
    usage_hint: str
    def __init__(self, campaign_id: _Optional[str] = ..., site_id: _Optional[str] = ..., name: _Optional[str] = ..., expression: _Optional[str] = ..., title: _Optional[str] = ..., kind: _Optional[_Union[_crm_pb2.CouponKind, str]] = ..., value_cents: _Optional[int] = ..., threshold_cents: _Optional[int] = ..., store_ids: _Optional[_Iterable[str]] = ..., valid_from_ms: _Optional[int] = ..., valid_until_ms: _Optional[int] = ..., per_member_limit: _Optional[int] = ..., usage_hint: _Optional[str] = ...) -> None: ...

class IssueCampaignRequest(_message.Message):
    __slots__ = ("campaign_id", "dry_run")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    dry_run: bool
    def __init__(self, campaign_id: _Optional[str] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class IssueCampaignResponse(_message.Message):
    __slots__ = ("matched", "issued", "at_limit")
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    AT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    matched: int
    issued: int
    at_limit: int
    def __init__(self, matched: _Optional[int] = ..., issued: _Optional[int] = ..., at_limit: _Optional[int] = ...) -> None: ...

class RedeemCouponRequest(_message.Message):
    __slots__ = ("redemption_id", "coupon_id", "member_id", "store_id", "device_id", "order_amount_cents")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    coupon_id: str
    member_id: str
    store_id: str
    device_id: str
    order_amount_cents: int
    def __init__(self, redemption_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., device_id: _Optional[str] = ..., order_amount_cents: _Optional[int] = ...) -> None: ...

class Redemption(_message.Message):
    __slots__ = ("redemption_id", "coupon_id", "member_id", "store_id", "device_id", "order_amount_cents", "discount_cents", "redeemed_at_ms", "status")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    REDEEMED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    coupon_id: str
    member_id: str
    store_id: str
    device_id: str
    order_amount_cents: int
    discount_cents: int
    redeemed_at_ms: int
    status: RedemptionStatus
    def __init__(self, redemption_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., device_id: _Optional[str] = ..., order_amount_cents: _Optional[int] = ..., discount_cents: _Optional[int] = ..., redeemed_at_ms: _Optional[int] = ..., status: _Optional[_Union[RedemptionStatus, str]] = ...) -> None: ...

class OfflineRedemption(_message.Message):
    __slots__ = ("redemption_id", "coupon_id", "member_id", "store_id", "order_amount_cents", "redeemed_at_ms")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    REDEEMED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    coupon_id: str
    member_id: str
    store_id: str
    order_amount_cents: int
    redeemed_at_ms: int
    def __init__(self, redemption_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., order_amount_cents: _Optional[int] = ..., redeemed_at_ms: _Optional[int] = ...) -> None: ...

class ReportOfflineRedemptionsRequest(_message.Message):
    __slots__ = ("device_id", "redemptions")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REDEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    redemptions: _containers.RepeatedCompositeFieldContainer[OfflineRedemption]
    def __init__(self, device_id: _Optional[str] = ..., redemptions: _Optional[_Iterable[_Union[OfflineRedemption, _Mapping]]] = ...) -> None: ...

class CompensatingEvent(_message.Message):
    __slots__ = ("event_id", "kind", "device_id", "coupon_id", "redemption_id", "member_id", "amount_cents", "message")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    kind: str
    device_id: str
    coupon_id: str
    redemption_id: str
    member_id: str
    amount_cents: int
    message: str
    def __init__(self, event_id: _Optional[str] = ..., kind: _Optional[str] = ..., device_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., redemption_id: _Optional[str] = ..., member_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class OfflineRedemptionResult(_message.Message):
    __slots__ = ("redemption_id", "outcome", "reason", "compensation")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    outcome: ReconcileOutcome
    reason: str
    compensation: CompensatingEvent
    def __init__(self, redemption_id: _Optional[str] = ..., outcome: _Optional[_Union[ReconcileOutcome, str]] = ..., reason: _Optional[str] = ..., compensation: _Optional[_Union[CompensatingEvent, _Mapping]] = ...) -> None: ...

class ReportOfflineRedemptionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[OfflineRedemptionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[OfflineRedemptionResult, _Mapping]]] = ...) -> None: ...

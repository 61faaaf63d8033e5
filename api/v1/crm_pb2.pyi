from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CouponKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUPON_KIND_UNSPECIFIED: _ClassVar[CouponKind]
    COUPON_KIND_CASH: _ClassVar[CouponKind]
    COUPON_KIND_THRESHOLD: _ClassVar[CouponKind]

class CouponStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUPON_STATUS_UNSPECIFIED: _ClassVar[CouponStatus]
    COUPON_STATUS_ISSUED: _ClassVar[CouponStatus]
    COUPON_STATUS_REDEEMED: _ClassVar[CouponStatus]
    COUPON_STATUS_EXPIRED: _ClassVar[CouponStatus]
COUPON_KIND_UNSPECIFIED: CouponKind
COUPON_KIND_CASH: CouponKind
COUPON_KIND_THRESHOLD: CouponKind
COUPON_STATUS_UNSPECIFIED: CouponStatus
COUPON_STATUS_ISSUED: CouponStatus
COUPON_STATUS_REDEEMED: CouponStatus
COUPON_STATUS_EXPIRED: CouponStatus

class Member(_message.Message):
    __slots__ = ("member_id", "name", "tier", "points", "tier_keep_points", "phone_last4", "gender", "birthday", "site_id", "updated_at_ms")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TIER_KEEP_POINTS_FIELD_NUMBER: _ClassVar[int]
    PHONE_LAST4_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    BIRTHDAY_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    name: str
    tier: str
    points: int
    tier_keep_points: int
    phone_last4: str
    gender: str
    birthday: str
    site_id: str
    updated_at_ms: int
    def __init__(self, member_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[str] = ..., points: _Optional[int] = ..., tier_keep_points: _Optional[int] = ..., phone_last4: _Optional[str] = ..., gender: _Optional[str] = ..., birthday: _Optional[str] = ..., site_id: _Optional[str] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("tag_id", "member_id", "kind", "value", "score", "computed_at_ms", "valid_until_ms")
    TAG_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    tag_id: str
    member_id: str
    kind: str
    value: str
    score: float
    computed_at_ms: int
    valid_until_ms: int
    def __init__(self, tag_id: _Optional[str] = ..., member_id: _Optional[str] = ..., kind: _Optional[str] = ..., value: _Optional[str] = ..., score: _Optional[float] = ..., computed_at_ms: _Optional[int] = ..., valid_until_ms: _Optional[int] = ...) -> None: ...

class FaceTemplate(_message.Message):
    __slots__ = ("template_id", "member_id", "model", "vector", "consent_id", "created_at_ms", "weight")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    member_id: str
    model: str
    vector: bytes
    consent_id: str
    created_at_ms: int
    weight: float
    def __init__(self, template_id: _Optional[str] = ..., member_id: _Optional[str] = ..., model: _Optional[str] = ..., vector: _Optional[bytes] = ..., consent_id: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class Coupon(_message.Message):
    __slots__ = ("coupon_id", "member_id", "title", "kind", "value_cents", "threshold_cents", "store_ids", "valid_from_ms", "valid_until_ms", "usage_hint", "status")
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_CENTS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_CENTS_FIELD_NUMBER: _ClassVar[int]
    STORE_IDS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_MS_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_HINT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    coupon_id: str
    member_id: str
    title: str
    kind: CouponKind
    value_cents: int
    threshold_cents: int
    store_ids: _containers.RepeatedScalarFieldContainer[str]
    valid_from_ms: int
    valid_until_ms: int
    usage_hint: str
    status: CouponStatus
    def __init__(self, coupon_id: _Optional[str] = ..., member_id: _Optional[str] = ..., title: _Optional[str] = ..., kind: _Optional[_Union[CouponKind, str]] = ..., value_cents: _Optional[int] = ..., threshold_cents: _Optional[int] = ..., store_ids: _Optional[_Iterable[str]] = ..., valid_from_ms: _Optional[int] = ..., valid_until_ms: _Optional[int] = ..., usage_hint: _Optional[str] = ..., status: _Optional[_Union[CouponStatus, str]] = ...) -> None: ...

from api.v1 import crm_pb2 as _crm_pb2
from api.v1 import credit_pb2 as _credit_pb2
from api.v1 import fusion_pb2 as _fusion_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_PURCHASE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_RETURN: _ClassVar[TransactionKind]
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_PURCHASE: TransactionKind
TRANSACTION_KIND_RETURN: TransactionKind

class UpsertMemberRequest(_message.Message):
    __slots__ = ("member_id", "site_id", "name", "phone", "birthday", "gender")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    BIRTHDAY_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    site_id: str
    name: str
    phone: str
    birthday: str
    gender: str
    def __init__(self, member_id: _Optional[str] = ..., site_id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., birthday: _Optional[str] = ..., gender: _Optional[str] = ...) -> None: ...

class GetMemberRequest(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class MemberProfile(_message.Message):
    __slots__ = ("member", "tags", "coupons", "credit", "identities")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    COUPONS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    member: _crm_pb2.Member
    tags: _containers.RepeatedCompositeFieldContainer[_crm_pb2.Tag]
    coupons: _containers.RepeatedCompositeFieldContainer[_crm_pb2.Coupon]
    credit: _credit_pb2.CreditReport
    identities: _containers.RepeatedCompositeFieldContainer[_fusion_pb2.LinkedIdentity]
    def __init__(self, member: _Optional[_Union[_crm_pb2.Member, _Mapping]] = ..., tags: _Optional[_Iterable[_Union[_crm_pb2.Tag, _Mapping]]] = ..., coupons: _Optional[_Iterable[_Union[_crm_pb2.Coupon, _Mapping]]] = ..., credit: _Optional[_Union[_credit_pb2.CreditReport, _Mapping]] = ..., identities: _Optional[_Iterable[_Union[_fusion_pb2.LinkedIdentity, _Mapping]]] = ...) -> None: ...

class RecordConsentRequest(_message.Message):
    __slots__ = ("consent_id", "member_id", "device_id", "text_version", "agreed_at_ms")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGREED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    member_id: str
    device_id: str
    text_version: str
    agreed_at_ms: int
    def __init__(self, consent_id: _Optional[str] = ..., member_id: _Optional[str] = ..., device_id: _Optional[str] = ..., text_version: _Optional[str] = ..., agreed_at_ms: _Optional[int] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("consent_id", "member_id", "device_id", "text_version", "agreed_at_ms")
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGREED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    consent_id: str
    member_id: str
    device_id: str
    text_version: str
    agreed_at_ms: int
    def __init__(self, consent_id: _Optional[str] = ..., member_id: _Optional[str] = ..., device_id: _Optional[str] = ..., text_version: _Optional[str] = ..., agreed_at_ms: _Optional[int] = ...) -> None: ...

class EnrollFaceRequest(_message.Message):
    __slots__ = ("member_id", "consent_id", "model", "vector", "template_id")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    consent_id: str
    model: str
    vector: bytes
    template_id: str
    def __init__(self, member_id: _Optional[str] = ..., consent_id: _Optional[str] = ..., model: _Optional[str] = ..., vector: _Optional[bytes] = ..., template_id: _Optional[str] = ...) -> None: ...

class EnrollFaceResponse(_message.Message):
    __slots__ = ("template_id",)
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: str
    def __init__(self, template_id: _Optional[str] = ...) -> None: ...

class WithdrawConsentRequest(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class WithdrawConsentResponse(_message.Message):
    __slots__ = ("templates_deleted",)
    TEMPLATES_DELETED_FIELD_NUMBER: _ClassVar[int]
    templates_deleted: int
    def __init__(self, templates_deleted: _Optional[int] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("txn_id", "member_id", "store_id", "brand", "amount_cents", "at_ms", "kind")
    TXN_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    txn_id: str
    member_id: str
    store_id: str
    brand: str
    amount_cents: int
    at_ms: int
    kind: TransactionKind
    def __init__(self, txn_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., brand: _Optional[str] = ..., amount_cents: _Optional[int] = ..., at_ms: _Optional[int] = ..., kind: _Optional[_Union[TransactionKind, str]] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("member_id", "limit")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    limit: int
    def __init__(self, member_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions",)
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ...) -> None: ...

class AddPointsRequest(_message.Message):
    __slots__ = ("entry_id", "member_id", "delta", "reason")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    member_id: str
    delta: int
    reason: str
    def __init__(self, entry_id: _Optional[str] = ..., member_id: _Optional[str] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class PointsEntry(_message.Message):
    __slots__ = ("entry_id", "member_id", "delta", "balance_after", "tier_after", "reason", "at_ms")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    TIER_AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    member_id: str
    delta: int
    balance_after: int
    tier_after: str
    reason: str
    at_ms: int
    def __init__(self, entry_id: _Optional[str] = ..., member_id: _Optional[str] = ..., delta: _Optional[int] = ..., balance_after: _Optional[int] = ..., tier_after: _Optional[str] = ..., reason: _Optional[str] = ..., at_ms: _Optional[int] = ...) -> None: ...

class ComputeTagsRequest(_message.Message):
    __slots__ = ("as_of_ms",)
    AS_OF_MS_FIELD_NUMBER: _ClassVar[int]
    as_of_ms: int
    def __init__(self, as_of_ms: _Optional[int] = ...) -> None: ...

class ComputeTagsResponse(_message.Message):
    __slots__ = ("members", "transactions", "tags_written", "kmeans_k", "kmeans_silhouette")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    TAGS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    KMEANS_K_FIELD_NUMBER: _ClassVar[int]
    KMEANS_SILHOUETTE_FIELD_NUMBER: _ClassVar[int]
    members: int
    transactions: int
    tags_written: int
    kmeans_k: int
    kmeans_silhouette: float
    def __init__(self, members: _Optional[int] = ..., transactions: _Optional[int] = ..., tags_written: _Optional[int] = ..., kmeans_k: _Optional[int] = ..., kmeans_silhouette: _Optional[float] = ...) -> None: ...

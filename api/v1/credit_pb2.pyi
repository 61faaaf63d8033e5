from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreditEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDIT_EVENT_KIND_UNSPECIFIED: _ClassVar[CreditEventKind]
    CREDIT_EVENT_KIND_ON_TIME: _ClassVar[CreditEventKind]
    CREDIT_EVENT_KIND_LATE: _ClassVar[CreditEventKind]
    CREDIT_EVENT_KIND_DEFAULT: _ClassVar[CreditEventKind]
CREDIT_EVENT_KIND_UNSPECIFIED: CreditEventKind
CREDIT_EVENT_KIND_ON_TIME: CreditEventKind
CREDIT_EVENT_KIND_LATE: CreditEventKind
CREDIT_EVENT_KIND_DEFAULT: CreditEventKind

class CreditFactor(_message.Message):
    __slots__ = ("name", "value", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    weight: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class CreditReport(_message.Message):
    __slots__ = ("member_id", "score", "grade", "factors", "privileges", "offline_limit_cents", "computed_at_ms")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GRADE_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGES_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_LIMIT_CENTS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    score: int
    grade: str
    factors: _containers.RepeatedCompositeFieldContainer[CreditFactor]
    privileges: _containers.RepeatedScalarFieldContainer[str]
    offline_limit_cents: int
    computed_at_ms: int
    def __init__(self, member_id: _Optional[str] = ..., score: _Optional[int] = ..., grade: _Optional[str] = ..., factors: _Optional[_Iterable[_Union[CreditFactor, _Mapping]]] = ..., privileges: _Optional[_Iterable[str]] = ..., offline_limit_cents: _Optional[int] = ..., computed_at_ms: _Optional[int] = ...) -> None: ...

class GetCreditRequest(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class CreditEvent(_message.Message):
    __slots__ = ("event_id", "member_id", "kind", "amount_cents", "at_ms")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    member_id: str
    kind: CreditEventKind
    amount_cents: int
    at_ms: int
    def __init__(self, event_id: _Optional[str] = ..., member_id: _Optional[str] = ..., kind: _Optional[_Union[CreditEventKind, str]] = ..., amount_cents: _Optional[int] = ..., at_ms: _Optional[int] = ...) -> None: ...

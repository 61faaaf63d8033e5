from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ID_TYPE_UNSPECIFIED: _ClassVar[IdType]
    ID_TYPE_MEMBER_ID: _ClassVar[IdType]
    ID_TYPE_OPEN_ID: _ClassVar[IdType]
    ID_TYPE_UNION_ID: _ClassVar[IdType]
    ID_TYPE_MAC_ID: _ClassVar[IdType]
    ID_TYPE_FACE_ID: _ClassVar[IdType]
    ID_TYPE_PHONE: _ClassVar[IdType]
ID_TYPE_UNSPECIFIED: IdType
ID_TYPE_MEMBER_ID: IdType
ID_TYPE_OPEN_ID: IdType
ID_TYPE_UNION_ID: IdType
ID_TYPE_MAC_ID: IdType
ID_TYPE_FACE_ID: IdType
ID_TYPE_PHONE: IdType

class LinkedIdentity(_message.Message):
    __slots__ = ("id_type", "id_value", "member_id", "evidence", "confidence", "observed_at_ms")
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_VALUE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    id_type: IdType
    id_value: str
    member_id: str
    evidence: str
    confidence: float
    observed_at_ms: int
    def __init__(self, id_type: _Optional[_Union[IdType, str]] = ..., id_value: _Optional[str] = ..., member_id: _Optional[str] = ..., evidence: _Optional[str] = ..., confidence: _Optional[float] = ..., observed_at_ms: _Optional[int] = ...) -> None: ...

class IdentityRef(_message.Message):
    __slots__ = ("id_type", "id_value")
    ID_TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_VALUE_FIELD_NUMBER: _ClassVar[int]
    id_type: IdType
    id_value: str
    def __init__(self, id_type: _Optional[_Union[IdType, str]] = ..., id_value: _Optional[str] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("member_id", "via", "merged_path")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    MERGED_PATH_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    via: LinkedIdentity
    merged_path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, member_id: _Optional[str] = ..., via: _Optional[_Union[LinkedIdentity, _Mapping]] = ..., merged_path: _Optional[_Iterable[str]] = ...) -> None: ...

class MergeRequest(_message.Message):
    __slots__ = ("keep_member_id", "absorb_member_id", "evidence")
    KEEP_MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    ABSORB_MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    keep_member_id: str
    absorb_member_id: str
    evidence: str
    def __init__(self, keep_member_id: _Optional[str] = ..., absorb_member_id: _Optional[str] = ..., evidence: _Optional[str] = ...) -> None: ...

class MergeResponse(_message.Message):
    __slots__ = ("member_id", "identities_moved")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_MOVED_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    identities_moved: int
    def __init__(self, member_id: _Optional[str] = ..., identities_moved: _Optional[int] = ...) -> None: ...

class SplitRequest(_message.Message):
    __slots__ = ("member_id", "to_member_id", "identities", "evidence")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TO_MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    to_member_id: str
    identities: _containers.RepeatedCompositeFieldContainer[IdentityRef]
    evidence: str
    def __init__(self, member_id: _Optional[str] = ..., to_member_id: _Optional[str] = ..., identities: _Optional[_Iterable[_Union[IdentityRef, _Mapping]]] = ..., evidence: _Optional[str] = ...) -> None: ...

class SplitResponse(_message.Message):
    __slots__ = ("identities_moved",)
    IDENTITIES_MOVED_FIELD_NUMBER: _ClassVar[int]
    identities_moved: int
    def __init__(self, identities_moved: _Optional[int] = ...) -> None: ...

class ListIdentitiesRequest(_message.Message):
    __slots__ = ("member_id",)
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    def __init__(self, member_id: _Optional[str] = ...) -> None: ...

class ListIdentitiesResponse(_message.Message):
    __slots__ = ("identities",)
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[LinkedIdentity]
    def __init__(self, identities: _Optional[_Iterable[_Union[LinkedIdentity, _Mapping]]] = ...) -> None: ...

class BrandCorrelationRequest(_message.Message):
    __slots__ = ("site_id", "min_members")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    min_members: int
    def __init__(self, site_id: _Optional[str] = ..., min_members: _Optional[int] = ...) -> None: ...

class BrandPair(_message.Message):
    __slots__ = ("brand_a", "brand_b", "members_both", "support", "confidence_a_to_b", "lift")
    BRAND_A_FIELD_NUMBER: _ClassVar[int]
    BRAND_B_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_BOTH_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_A_TO_B_FIELD_NUMBER: _ClassVar[int]
    LIFT_FIELD_NUMBER: _ClassVar[int]
    brand_a: str
    brand_b: str
    members_both: int
    support: float
    confidence_a_to_b: float
    lift: float
    def __init__(self, brand_a: _Optional[str] = ..., brand_b: _Optional[str] = ..., members_both: _Optional[int] = ..., support: _Optional[float] = ..., confidence_a_to_b: _Optional[float] = ..., lift: _Optional[float] = ...) -> None: ...

class BrandCluster(_message.Message):
    __slots__ = ("brands",)
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    brands: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, brands: _Optional[_Iterable[str]] = ...) -> None: ...

class BrandCorrelationResponse(_message.Message):
    __slots__ = ("members", "pairs", "clusters")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    members: int
    pairs: _containers.RepeatedCompositeFieldContainer[BrandPair]
    clusters: _containers.RepeatedCompositeFieldContainer[BrandCluster]
    def __init__(self, members: _Optional[int] = ..., pairs: _Optional[_Iterable[_Union[BrandPair, _Mapping]]] = ..., clusters: _Optional[_Iterable[_Union[BrandCluster, _Mapping]]] = ...) -> None: ...

class PlateLink(_message.Message):
    __slots__ = ("plate", "member_id", "evidence", "observed_at_ms")
    PLATE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    plate: str
    member_id: str
    evidence: str
    observed_at_ms: int
    def __init__(self, plate: _Optional[str] = ..., member_id: _Optional[str] = ..., evidence: _Optional[str] = ..., observed_at_ms: _Optional[int] = ...) -> None: ...

class ParkingEvent(_message.Message):
    __slots__ = ("plate", "site_id", "bay", "entered", "at_ms")
    PLATE_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    BAY_FIELD_NUMBER: _ClassVar[int]
    ENTERED_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    plate: str
    site_id: str
    bay: str
    entered: bool
    at_ms: int
    def __init__(self, plate: _Optional[str] = ..., site_id: _Optional[str] = ..., bay: _Optional[str] = ..., entered: _Optional[bool] = ..., at_ms: _Optional[int] = ...) -> None: ...

class FindCarRequest(_message.Message):
    __slots__ = ("who",)
    WHO_FIELD_NUMBER: _ClassVar[int]
    who: IdentityRef
    def __init__(self, who: _Optional[_Union[IdentityRef, _Mapping]] = ...) -> None: ...

class CarLocation(_message.Message):
    __slots__ = ("plate", "site_id", "bay", "entered_at_ms")
    PLATE_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    BAY_FIELD_NUMBER: _ClassVar[int]
    ENTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    plate: str
    site_id: str
    bay: str
    entered_at_ms: int
    def __init__(self, plate: _Optional[str] = ..., site_id: _Optional[str] = ..., bay: _Optional[str] = ..., entered_at_ms: _Optional[int] = ...) -> None: ...

class FindCarResponse(_message.Message):
    __slots__ = ("member_id", "cars")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CARS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    cars: _containers.RepeatedCompositeFieldContainer[CarLocation]
    def __init__(self, member_id: _Optional[str] = ..., cars: _Optional[_Iterable[_Union[CarLocation, _Mapping]]] = ...) -> None: ...

from api.v1 import crm_pb2 as _crm_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_MEMBERS: _ClassVar[Stream]
    STREAM_TAGS: _ClassVar[Stream]
    STREAM_TEMPLATES: _ClassVar[Stream]
    STREAM_COUPONS: _ClassVar[Stream]
STREAM_UNSPECIFIED: Stream
STREAM_MEMBERS: Stream
STREAM_TAGS: Stream
STREAM_TEMPLATES: Stream
STREAM_COUPONS: Stream

class Cursor(_message.Message):
    __slots__ = ("stream", "seq")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    seq: int
    def __init__(self, stream: _Optional[_Union[Stream, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "cursors", "max_changes")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CURSORS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANGES_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    cursors: _containers.RepeatedCompositeFieldContainer[Cursor]
    max_changes: int
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., cursors: _Optional[_Iterable[_Union[Cursor, _Mapping]]] = ..., max_changes: _Optional[int] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("seq", "key", "deleted", "member", "tag", "template", "coupon")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    COUPON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    key: str
    deleted: bool
    member: _crm_pb2.Member
    tag: _crm_pb2.Tag
    template: _crm_pb2.FaceTemplate
    coupon: _crm_pb2.Coupon
    def __init__(self, seq: _Optional[int] = ..., key: _Optional[str] = ..., deleted: _Optional[bool] = ..., member: _Optional[_Union[_crm_pb2.Member, _Mapping]] = ..., tag: _Optional[_Union[_crm_pb2.Tag, _Mapping]] = ..., template: _Optional[_Union[_crm_pb2.FaceTemplate, _Mapping]] = ..., coupon: _Optional[_Union[_crm_pb2.Coupon, _Mapping]] = ...) -> None: ...

class StreamBatch(_message.Message):
    __slots__ = ("stream", "changes", "next_seq", "has_more")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    next_seq: int
    has_more: bool
    def __init__(self, stream: _Optional[_Union[Stream, str]] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., next_seq: _Optional[int] = ..., has_more: _Optional[bool] = ...) -> None: ...

class PullResponse(_message.Message):
    __slots__ = ("batches", "server_time_ms")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[StreamBatch]
    server_time_ms: int
    def __init__(self, batches: _Optional[_Iterable[_Union[StreamBatch, _Mapping]]] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetMemberQrKeysRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class MemberQrKey(_message.Message):
    __slots__ = ("key_id", "public_key", "signing")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNING_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    public_key: bytes
    signing: bool
    def __init__(self, key_id: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., signing: _Optional[bool] = ...) -> None: ...

class MemberQrKeySet(_message.Message):
    __slots__ = ("site_id", "keys", "server_time_ms")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    keys: _containers.RepeatedCompositeFieldContainer[MemberQrKey]
    server_time_ms: int
    def __init__(self, site_id: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[MemberQrKey, _Mapping]]] = ..., server_time_ms: _Optional[int] = ...) -> None: ...

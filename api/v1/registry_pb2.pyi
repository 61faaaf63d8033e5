from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Site(_message.Message):
    __slots__ = ("site_id", "name")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Store(_message.Message):
    __slots__ = ("store_id", "site_id", "name", "brand")
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    store_id: str
    site_id: str
    name: str
    brand: str
    def __init__(self, store_id: _Optional[str] = ..., site_id: _Optional[str] = ..., name: _Optional[str] = ..., brand: _Optional[str] = ...) -> None: ...

class ListStoresRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class ListStoresResponse(_message.Message):
    __slots__ = ("stores",)
    STORES_FIELD_NUMBER: _ClassVar[int]
    stores: _containers.RepeatedCompositeFieldContainer[Store]
    def __init__(self, stores: _Optional[_Iterable[_Union[Store, _Mapping]]] = ...) -> None: ...

class CreateClaimTokenRequest(_message.Message):
    __slots__ = ("site_id", "store_id", "profile", "ttl_s")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    store_id: str
    profile: str
    ttl_s: int
    def __init__(self, site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., profile: _Optional[str] = ..., ttl_s: _Optional[int] = ...) -> None: ...

class ClaimToken(_message.Message):
    __slots__ = ("token", "site_id", "store_id", "profile", "expires_at_ms")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    token: str
    site_id: str
    store_id: str
    profile: str
    expires_at_ms: int
    def __init__(self, token: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., profile: _Optional[str] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class ClaimDeviceRequest(_message.Message):
    __slots__ = ("token", "device_id", "name")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    token: str
    device_id: str
    name: str
    def __init__(self, token: _Optional[str] = ..., device_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "profile", "name", "claimed_at_ms", "last_seen_at_ms", "software_version")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    profile: str
    name: str
    claimed_at_ms: int
    last_seen_at_ms: int
    software_version: str
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., profile: _Optional[str] = ..., name: _Optional[str] = ..., claimed_at_ms: _Optional[int] = ..., last_seen_at_ms: _Optional[int] = ..., software_version: _Optional[str] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("device_id", "software_version")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    software_version: str
    def __init__(self, device_id: _Optional[str] = ..., software_version: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("claim_token", "csr_pem", "device_id", "name")
    CLAIM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    claim_token: str
    csr_pem: str
    device_id: str
    name: str
    def __init__(self, claim_token: _Optional[str] = ..., csr_pem: _Optional[str] = ..., device_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem", "device_id", "site_id", "store_id", "not_after_ms", "profile", "mtls_port", "serial")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    MTLS_PORT_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    ca_pem: str
    device_id: str
    site_id: str
    store_id: str
    not_after_ms: int
    profile: str
    mtls_port: int
    serial: str
    def __init__(self, certificate_pem: _Optional[str] = ..., ca_pem: _Optional[str] = ..., device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., not_after_ms: _Optional[int] = ..., profile: _Optional[str] = ..., mtls_port: _Optional[int] = ..., serial: _Optional[str] = ...) -> None: ...

class RotateCertificateRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: str
    def __init__(self, csr_pem: _Optional[str] = ...) -> None: ...

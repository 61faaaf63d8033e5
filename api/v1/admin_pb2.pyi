from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PeripheralState(_message.Message):
    __slots__ = ("name", "backend", "status", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    status: str
    detail: str
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ModelState(_message.Message):
    __slots__ = ("name", "status", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    detail: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class SyncState(_message.Message):
    __slots__ = ("state", "lag_s", "outbox_depth", "quarantined", "last_success_ms")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAG_S_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_MS_FIELD_NUMBER: _ClassVar[int]
    state: str
    lag_s: float
    outbox_depth: int
    quarantined: int
    last_success_ms: int
    def __init__(self, state: _Optional[str] = ..., lag_s: _Optional[float] = ..., outbox_depth: _Optional[int] = ..., quarantined: _Optional[int] = ..., last_success_ms: _Optional[int] = ...) -> None: ...

class DiskState(_message.Message):
    __slots__ = ("path", "total_bytes", "free_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    total_bytes: int
    free_bytes: int
    def __init__(self, path: _Optional[str] = ..., total_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "profile", "software_version", "uptime_s", "host_uptime_s", "sync", "peripherals", "accelerator", "models", "disk", "certificate_not_after_ms", "certificate_serial", "identity")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    HOST_UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    SYNC_FIELD_NUMBER: _ClassVar[int]
    PERIPHERALS_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DISK_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SERIAL_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    profile: str
    software_version: str
    uptime_s: float
    host_uptime_s: float
    sync: SyncState
    peripherals: _containers.RepeatedCompositeFieldContainer[PeripheralState]
    accelerator: str
    models: _containers.RepeatedCompositeFieldContainer[ModelState]
    disk: DiskState
    certificate_not_after_ms: int
    certificate_serial: str
    identity: IdentityState
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., profile: _Optional[str] = ..., software_version: _Optional[str] = ..., uptime_s: _Optional[float] = ..., host_uptime_s: _Optional[float] = ..., sync: _Optional[_Union[SyncState, _Mapping]] = ..., peripherals: _Optional[_Iterable[_Union[PeripheralState, _Mapping]]] = ..., accelerator: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelState, _Mapping]]] = ..., disk: _Optional[_Union[DiskState, _Mapping]] = ..., certificate_not_after_ms: _Optional[int] = ..., certificate_serial: _Optional[str] = ..., identity: _Optional[_Union[IdentityState, _Mapping]] = ...) -> None: ...

class IdentityState(_message.Message):
    __slots__ = ("members", "templates", "match_threshold", "greet_threshold", "payment_threshold", "scaled", "detail")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MATCH_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    GREET_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCALED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    members: int
    templates: int
    match_threshold: float
    greet_threshold: float
    payment_threshold: float
    scaled: bool
    detail: str
    def __init__(self, members: _Optional[int] = ..., templates: _Optional[int] = ..., match_threshold: _Optional[float] = ..., greet_threshold: _Optional[float] = ..., payment_threshold: _Optional[float] = ..., scaled: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class SelfTestRequest(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class SelfTestCheck(_message.Message):
    __slots__ = ("name", "kind", "backend", "status", "detail", "median_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    backend: str
    status: str
    detail: str
    median_ms: float
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., backend: _Optional[str] = ..., status: _Optional[str] = ..., detail: _Optional[str] = ..., median_ms: _Optional[float] = ...) -> None: ...

class SelfTestResponse(_message.Message):
    __slots__ = ("ok", "checks")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checks: _containers.RepeatedCompositeFieldContainer[SelfTestCheck]
    def __init__(self, ok: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[SelfTestCheck, _Mapping]]] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("tail", "since_ms")
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    tail: int
    since_ms: int
    def __init__(self, tail: _Optional[int] = ..., since_ms: _Optional[int] = ...) -> None: ...

class LogsResponse(_message.Message):
    __slots__ = ("lines", "truncated")
    LINES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    truncated: bool
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConfigSetting(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetConfigRequest(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: _containers.RepeatedCompositeFieldContainer[ConfigSetting]
    def __init__(self, settings: _Optional[_Iterable[_Union[ConfigSetting, _Mapping]]] = ...) -> None: ...

class ConfigResponse(_message.Message):
    __slots__ = ("device_file", "resolved", "path", "restart_needed")
    DEVICE_FILE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RESTART_NEEDED_FIELD_NUMBER: _ClassVar[int]
    device_file: str
    resolved: str
    path: str
    restart_needed: bool
    def __init__(self, device_file: _Optional[str] = ..., resolved: _Optional[str] = ..., path: _Optional[str] = ..., restart_needed: _Optional[bool] = ...) -> None: ...

class RestartRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestartResponse(_message.Message):
    __slots__ = ("detail",)
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    detail: str
    def __init__(self, detail: _Optional[str] = ...) -> None: ...

class FactoryResetRequest(_message.Message):
    __slots__ = ("confirm_device_id",)
    CONFIRM_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    confirm_device_id: str
    def __init__(self, confirm_device_id: _Optional[str] = ...) -> None: ...

class FactoryResetResponse(_message.Message):
    __slots__ = ("templates_erased", "replica_erased", "replica_bytes_removed", "detail")
    TEMPLATES_ERASED_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ERASED_FIELD_NUMBER: _ClassVar[int]
    REPLICA_BYTES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    templates_erased: bool
    replica_erased: bool
    replica_bytes_removed: int
    detail: str
    def __init__(self, templates_erased: _Optional[bool] = ..., replica_erased: _Optional[bool] = ..., replica_bytes_removed: _Optional[int] = ..., detail: _Optional[str] = ...) -> None: ...

class RotateCertificateAdminRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateCertificateAdminResponse(_message.Message):
    __slots__ = ("old_serial", "new_serial", "not_after_ms")
    OLD_SERIAL_FIELD_NUMBER: _ClassVar[int]
    NEW_SERIAL_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    old_serial: str
    new_serial: str
    not_after_ms: int
    def __init__(self, old_serial: _Optional[str] = ..., new_serial: _Optional[str] = ..., not_after_ms: _Optional[int] = ...) -> None: ...

class TechnicianLoginRequest(_message.Message):
    __slots__ = ("login_token", "csr_pem")
    LOGIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    login_token: str
    csr_pem: str
    def __init__(self, login_token: _Optional[str] = ..., csr_pem: _Optional[str] = ...) -> None: ...

class TechnicianLoginResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem", "site_id", "name", "not_after_ms", "serial")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: str
    ca_pem: str
    site_id: str
    name: str
    not_after_ms: int
    serial: str
    def __init__(self, certificate_pem: _Optional[str] = ..., ca_pem: _Optional[str] = ..., site_id: _Optional[str] = ..., name: _Optional[str] = ..., not_after_ms: _Optional[int] = ..., serial: _Optional[str] = ...) -> None: ...

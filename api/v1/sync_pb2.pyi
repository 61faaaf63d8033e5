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

class AckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_STATUS_UNSPECIFIED: _ClassVar[AckStatus]
    ACK_STATUS_ACCEPTED: _ClassVar[AckStatus]
    ACK_STATUS_DUPLICATE: _ClassVar[AckStatus]
    ACK_STATUS_REJECTED: _ClassVar[AckStatus]
STREAM_UNSPECIFIED: Stream
STREAM_MEMBERS: Stream
STREAM_TAGS: Stream
STREAM_TEMPLATES: Stream
STREAM_COUPONS: Stream
ACK_STATUS_UNSPECIFIED: AckStatus
ACK_STATUS_ACCEPTED: AckStatus
ACK_STATUS_DUPLICATE: AckStatus
ACK_STATUS_REJECTED: AckStatus

class Cursor(_message.Message):
    __slots__ = ("stream", "seq")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    seq: int
    def __init__(self, stream: _Optional[_Union[Stream, str]] = ..., seq: _Optional[int] = ...) -> None: ...

class PullRequest(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "cursors", "max_changes", "wait_ms", "open_compensation_ids")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CURSORS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANGES_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_COMPENSATION_IDS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    cursors: _containers.RepeatedCompositeFieldContainer[Cursor]
    max_changes: int
    wait_ms: int
    open_compensation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., cursors: _Optional[_Iterable[_Union[Cursor, _Mapping]]] = ..., max_changes: _Optional[int] = ..., wait_ms: _Optional[int] = ..., open_compensation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

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
    __slots__ = ("batches", "server_time_ms", "snapshot_required", "closures")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CLOSURES_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[StreamBatch]
    server_time_ms: int
    snapshot_required: bool
    closures: _containers.RepeatedCompositeFieldContainer[CompensationClosure]
    def __init__(self, batches: _Optional[_Iterable[_Union[StreamBatch, _Mapping]]] = ..., server_time_ms: _Optional[int] = ..., snapshot_required: _Optional[bool] = ..., closures: _Optional[_Iterable[_Union[CompensationClosure, _Mapping]]] = ...) -> None: ...

class CompensationClosure(_message.Message):
    __slots__ = ("compensation_id", "note", "closed_at_ms")
    COMPENSATION_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    compensation_id: str
    note: str
    closed_at_ms: int
    def __init__(self, compensation_id: _Optional[str] = ..., note: _Optional[str] = ..., closed_at_ms: _Optional[int] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "page_rows")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_ROWS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    page_rows: int
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., page_rows: _Optional[int] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("text", "int", "real", "blob")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INT_FIELD_NUMBER: _ClassVar[int]
    REAL_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    text: _containers.RepeatedScalarFieldContainer[str]
    int: _containers.RepeatedScalarFieldContainer[int]
    real: _containers.RepeatedScalarFieldContainer[float]
    blob: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, text: _Optional[_Iterable[str]] = ..., int: _Optional[_Iterable[int]] = ..., real: _Optional[_Iterable[float]] = ..., blob: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SnapshotPage(_message.Message):
    __slots__ = ("stream", "snapshot_seq", "column_names", "columns", "rows", "done")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SEQ_FIELD_NUMBER: _ClassVar[int]
    COLUMN_NAMES_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    snapshot_seq: int
    column_names: _containers.RepeatedScalarFieldContainer[str]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    rows: int
    done: bool
    def __init__(self, stream: _Optional[_Union[Stream, str]] = ..., snapshot_seq: _Optional[int] = ..., column_names: _Optional[_Iterable[str]] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., rows: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class VisitEvent(_message.Message):
    __slots__ = ("member_id", "store_id", "score")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    store_id: str
    score: float
    def __init__(self, member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class PaymentEvent(_message.Message):
    __slots__ = ("payment_id", "member_id", "store_id", "amount_cents", "offline", "refund_of", "restore_redemption_id")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_FIELD_NUMBER: _ClassVar[int]
    REFUND_OF_FIELD_NUMBER: _ClassVar[int]
    RESTORE_REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    member_id: str
    store_id: str
    amount_cents: int
    offline: bool
    refund_of: str
    restore_redemption_id: str
    def __init__(self, payment_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., offline: _Optional[bool] = ..., refund_of: _Optional[str] = ..., restore_redemption_id: _Optional[str] = ...) -> None: ...

class PointsEvent(_message.Message):
    __slots__ = ("member_id", "delta", "reason")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    delta: int
    reason: str
    def __init__(self, member_id: _Optional[str] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CouponRedemptionEvent(_message.Message):
    __slots__ = ("redemption_id", "coupon_id", "member_id", "store_id", "order_amount_cents")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    coupon_id: str
    member_id: str
    store_id: str
    order_amount_cents: int
    def __init__(self, redemption_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., member_id: _Optional[str] = ..., store_id: _Optional[str] = ..., order_amount_cents: _Optional[int] = ...) -> None: ...

class EnrollmentEvent(_message.Message):
    __slots__ = ("member_id", "consent_id", "consent_text_version", "template_id", "model", "vector", "member_code", "member_code_scanned_at_ms")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    MEMBER_CODE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_CODE_SCANNED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    consent_id: str
    consent_text_version: str
    template_id: str
    model: str
    vector: bytes
    member_code: str
    member_code_scanned_at_ms: int
    def __init__(self, member_id: _Optional[str] = ..., consent_id: _Optional[str] = ..., consent_text_version: _Optional[str] = ..., template_id: _Optional[str] = ..., model: _Optional[str] = ..., vector: _Optional[bytes] = ..., member_code: _Optional[str] = ..., member_code_scanned_at_ms: _Optional[int] = ...) -> None: ...

class ConsentChangeEvent(_message.Message):
    __slots__ = ("member_id", "granted", "consent_id", "text_version")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    CONSENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_VERSION_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    granted: bool
    consent_id: str
    text_version: str
    def __init__(self, member_id: _Optional[str] = ..., granted: _Optional[bool] = ..., consent_id: _Optional[str] = ..., text_version: _Optional[str] = ...) -> None: ...

class NotMeEvent(_message.Message):
    __slots__ = ("member_id", "template_id", "score")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    template_id: str
    score: float
    def __init__(self, member_id: _Optional[str] = ..., template_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class TrafficAggregateEvent(_message.Message):
    __slots__ = ("store_id", "window_start_ms", "window_ms", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    store_id: str
    window_start_ms: int
    window_ms: int
    counts: _containers.ScalarMap[str, int]
    def __init__(self, store_id: _Optional[str] = ..., window_start_ms: _Optional[int] = ..., window_ms: _Optional[int] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class AdminActionEvent(_message.Message):
    __slots__ = ("actor", "actor_serial", "action", "detail", "outcome")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_SERIAL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    actor: str
    actor_serial: str
    action: str
    detail: str
    outcome: str
    def __init__(self, actor: _Optional[str] = ..., actor_serial: _Optional[str] = ..., action: _Optional[str] = ..., detail: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class ReconciliationEvent(_message.Message):
    __slots__ = ("compensation_id", "sale_id", "state", "resolved_by", "resolved_at_ms")
    COMPENSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SALE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    compensation_id: str
    sale_id: str
    state: str
    resolved_by: str
    resolved_at_ms: int
    def __init__(self, compensation_id: _Optional[str] = ..., sale_id: _Optional[str] = ..., state: _Optional[str] = ..., resolved_by: _Optional[str] = ..., resolved_at_ms: _Optional[int] = ...) -> None: ...

class DeviceEvent(_message.Message):
    __slots__ = ("event_id", "stream", "stream_seq", "occurred_at_ms", "visit", "payment", "points", "redemption", "enrollment", "consent", "not_me", "traffic", "admin", "reconciliation")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    STREAM_SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VISIT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REDEMPTION_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENT_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    NOT_ME_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    RECONCILIATION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    stream: str
    stream_seq: int
    occurred_at_ms: int
    visit: VisitEvent
    payment: PaymentEvent
    points: PointsEvent
    redemption: CouponRedemptionEvent
    enrollment: EnrollmentEvent
    consent: ConsentChangeEvent
    not_me: NotMeEvent
    traffic: TrafficAggregateEvent
    admin: AdminActionEvent
    reconciliation: ReconciliationEvent
    def __init__(self, event_id: _Optional[str] = ..., stream: _Optional[str] = ..., stream_seq: _Optional[int] = ..., occurred_at_ms: _Optional[int] = ..., visit: _Optional[_Union[VisitEvent, _Mapping]] = ..., payment: _Optional[_Union[PaymentEvent, _Mapping]] = ..., points: _Optional[_Union[PointsEvent, _Mapping]] = ..., redemption: _Optional[_Union[CouponRedemptionEvent, _Mapping]] = ..., enrollment: _Optional[_Union[EnrollmentEvent, _Mapping]] = ..., consent: _Optional[_Union[ConsentChangeEvent, _Mapping]] = ..., not_me: _Optional[_Union[NotMeEvent, _Mapping]] = ..., traffic: _Optional[_Union[TrafficAggregateEvent, _Mapping]] = ..., admin: _Optional[_Union[AdminActionEvent, _Mapping]] = ..., reconciliation: _Optional[_Union[ReconciliationEvent, _Mapping]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("device_id", "site_id", "store_id", "events", "device_time_ms")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    store_id: str
    events: _containers.RepeatedCompositeFieldContainer[DeviceEvent]
    device_time_ms: int
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., store_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[DeviceEvent, _Mapping]]] = ..., device_time_ms: _Optional[int] = ...) -> None: ...

class EventAck(_message.Message):
    __slots__ = ("event_id", "status", "reason")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    status: AckStatus
    reason: str
    def __init__(self, event_id: _Optional[str] = ..., status: _Optional[_Union[AckStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class Compensation(_message.Message):
    __slots__ = ("compensation_id", "kind", "cause_event_id", "member_id", "coupon_id", "amount_cents", "message", "created_at_ms")
    COMPENSATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAUSE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    compensation_id: str
    kind: str
    cause_event_id: str
    member_id: str
    coupon_id: str
    amount_cents: int
    message: str
    created_at_ms: int
    def __init__(self, compensation_id: _Optional[str] = ..., kind: _Optional[str] = ..., cause_event_id: _Optional[str] = ..., member_id: _Optional[str] = ..., coupon_id: _Optional[str] = ..., amount_cents: _Optional[int] = ..., message: _Optional[str] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("acks", "compensations", "server_time_ms", "clock_skew_ms")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    COMPENSATIONS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CLOCK_SKEW_MS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[EventAck]
    compensations: _containers.RepeatedCompositeFieldContainer[Compensation]
    server_time_ms: int
    clock_skew_ms: int
    def __init__(self, acks: _Optional[_Iterable[_Union[EventAck, _Mapping]]] = ..., compensations: _Optional[_Iterable[_Union[Compensation, _Mapping]]] = ..., server_time_ms: _Optional[int] = ..., clock_skew_ms: _Optional[int] = ...) -> None: ...

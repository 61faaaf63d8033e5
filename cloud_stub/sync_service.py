"""`Sync` gRPC service of the reference cloud: serves per-stream changes after the device's cursors.

Errors are translated to gRPC status codes in one place (`SyncServicer.Pull`): a malformed request is
INVALID_ARGUMENT, a busy database UNAVAILABLE (the device retries with backoff), any other storage
failure INTERNAL, and a deadline that passes between streams DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from api.v1 import crm_pb2, sync_pb2, sync_pb2_grpc
from cloud_stub.errors import CloudError, InvalidRequestError, NotFoundError, StorageBusyError
from cloud_stub.storage import Storage, now_ms

log = logging.getLogger(__name__)

#: Changes per stream when the request leaves `max_changes` at 0.
DEFAULT_MAX_CHANGES = 500
#: Upper bound on `max_changes`, whatever the device asks for.
MAX_CHANGES_CAP = 5000

SERVICE_NAME = sync_pb2.DESCRIPTOR.services_by_name["Sync"].full_name


class _DeadlineExceeded(Exception):
    """The caller's deadline passed while the response was being built."""


def _member(row: dict[str, Any]) -> crm_pb2.Member:
    return crm_pb2.Member(
        member_id=row["member_id"], name=row["name"], tier=row["tier"], points=row["points"],
        tier_keep_points=row["tier_keep_points"], phone_last4=row["phone_last4"], gender=row["gender"],
        birthday=row["birthday"], site_id=row["site_id"], updated_at_ms=row["updated_at_ms"],
    )


def _tag(row: dict[str, Any]) -> crm_pb2.Tag:
    return crm_pb2.Tag(
        tag_id=row["tag_id"], member_id=row["member_id"], kind=row["kind"], value=row["value"],
        score=row["score"], computed_at_ms=row["computed_at_ms"], valid_until_ms=row["valid_until_ms"],
    )


def _template(row: dict[str, Any]) -> crm_pb2.FaceTemplate:
    return crm_pb2.FaceTemplate(
        template_id=row["template_id"], member_id=row["member_id"], model=row["model"],
        vector=row["vector"], consent_id=row["consent_id"], created_at_ms=row["created_at_ms"],
        weight=row["weight"],
    )


def _coupon(row: dict[str, Any]) -> crm_pb2.Coupon:
    return crm_pb2.Coupon(
        coupon_id=row["coupon_id"], member_id=row["member_id"], title=row["title"], kind=row["kind"],
        value_cents=row["value_cents"], threshold_cents=row["threshold_cents"],
        store_ids=row["store_ids"], valid_from_ms=row["valid_from_ms"],
        valid_until_ms=row["valid_until_ms"], usage_hint=row["usage_hint"], status=row["status"],
    )


# Stream → (Change oneof field, row converter).
_PAYLOADS = {
    sync_pb2.STREAM_MEMBERS: ("member", _member),
    sync_pb2.STREAM_TAGS: ("tag", _tag),
    sync_pb2.STREAM_TEMPLATES: ("template", _template),
    sync_pb2.STREAM_COUPONS: ("coupon", _coupon),
}


class SyncServicer(sync_pb2_grpc.SyncServicer):
    """Serves `Sync.Pull` from a `Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> sync_pb2.PullResponse:
        """Translate our errors to gRPC status codes — the one boundary of this service."""
        try:
            return self._pull(request, context)
        except InvalidRequestError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except NotFoundError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        except StorageBusyError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        except _DeadlineExceeded as err:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(err))
        except CloudError as err:
            log.exception("Pull failed for site %r", request.site_id)
            context.abort(grpc.StatusCode.INTERNAL, f"cloud storage error: {err}")
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> sync_pb2.PullResponse:
        if not request.site_id:
            raise InvalidRequestError("site_id is required: a device pulls the data of its own site only")
        if request.max_changes < 0:
            raise InvalidRequestError(f"max_changes must be >= 0, got {request.max_changes}")
        limit = min(request.max_changes or DEFAULT_MAX_CHANGES, MAX_CHANGES_CAP)
        seen: set[int] = set()
        for cursor in request.cursors:
            if cursor.stream not in _PAYLOADS:
                raise InvalidRequestError(
                    f"unknown stream {cursor.stream} in cursors (known: "
                    + ", ".join(sync_pb2.Stream.Name(s) for s in _PAYLOADS) + ")"
                )
            if cursor.stream in seen:
                raise InvalidRequestError(f"stream {sync_pb2.Stream.Name(cursor.stream)} is listed twice")
            if cursor.seq < 0:
                raise InvalidRequestError(f"cursor seq must be >= 0, got {cursor.seq}")
            seen.add(cursor.stream)

        response = sync_pb2.PullResponse()
        # Read before the per-stream queries: every write after it gets a larger seq, and writes
        # commit in seq order, so a stream with nothing more up to `head` may jump its cursor there,
        # and a cursor already at `head` needs no query at all (the empty delta most pulls are).
        head = self._storage.head_seq()
        for cursor in request.cursors:
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise _DeadlineExceeded("deadline passed while serving the pull; retry with a longer deadline")
            if cursor.seq >= head:
                response.batches.add(stream=cursor.stream, next_seq=cursor.seq)
                continue
            field, convert = _PAYLOADS[cursor.stream]
            changes, has_more = self._storage.changes(cursor.stream, request.site_id, cursor.seq, limit)
            batch = response.batches.add(stream=cursor.stream, has_more=has_more)
            for seq, key, deleted, row in changes:
                change = batch.changes.add(seq=seq, key=key, deleted=deleted)
                if not deleted:
                    getattr(change, field).CopyFrom(convert(row))
            last = changes[-1][0] if changes else cursor.seq
            batch.next_seq = last if has_more else max(last, head)
        response.server_time_ms = now_ms()
        return response

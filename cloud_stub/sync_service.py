"""`Sync` gRPC service of the reference cloud: Pull serves per-stream changes after the device's cursors
(held as a long poll while there are none), Push applies device events exactly once
(`cloud_stub.device_events`). Both authorise through `cloud_stub.auth.require_device`.

Errors are translated to gRPC status codes in one place (`SyncServicer._translate`): a malformed request is
INVALID_ARGUMENT, a busy database UNAVAILABLE (the device retries with backoff), any other storage
failure INTERNAL, and a deadline that passes between streams DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc

from api.v1 import crm_pb2, sync_pb2, sync_pb2_grpc
from cloud_stub import auth
from cloud_stub.cli_reconcile import closures_for
from cloud_stub.device_events import apply_push
from cloud_stub.errors import CloudError, InvalidRequestError, NotFoundError, StorageBusyError
from cloud_stub.storage import Storage, now_ms

log = logging.getLogger(__name__)

#: Changes per stream when the request leaves `max_changes` at 0.
DEFAULT_MAX_CHANGES = 500
#: Upper bound on `max_changes`, whatever the device asks for.
MAX_CHANGES_CAP = 5000
#: Longest a long-poll Pull is held open (the device asks for less; its deadline also caps it).
MAX_WAIT_MS = 30_000
#: How often a held Pull looks at the head seq (one indexed read on a cached connection). Writes may
#: come from other processes (admin CLI, another server), so this polls rather than waiting on an event.
WAIT_POLL_S = 0.05
#: A held Pull answers this long before the caller's deadline, so the answer is not lost to it.
WAIT_DEADLINE_MARGIN_S = 0.5

#: Rows per snapshot page when the request leaves `page_rows` at 0, and the cap on what it asks for
#: (template pages are smaller still, see `SqliteStorage.snapshot`, to stay under the message limit).
SNAPSHOT_PAGE_ROWS = 5000
SNAPSHOT_PAGE_ROWS_CAP = 20_000

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


def _page(stream: int, head: int, names: tuple[str, ...], columns: list[tuple[Any, ...]],
          count: int) -> sync_pb2.SnapshotPage:
    """A columnar page: each column goes into the one list of its type (extend: no per-row message)."""
    page = sync_pb2.SnapshotPage(stream=stream, snapshot_seq=head, column_names=names, rows=count)
    for name, values in zip(names, columns, strict=True):
        col = page.columns.add()
        if count:
            kind = "text" if (stream, name) in _TEXT_IN_STREAM else _COLUMN_KIND.get(name, "text")
            getattr(col, kind).extend(values)
    return page


#: Column → the `Column` list it travels in (the rest are text).
_COLUMN_KIND = {
    "points": "int", "tier_keep_points": "int", "updated_at_ms": "int", "computed_at_ms": "int",
    "valid_until_ms": "int", "created_at_ms": "int", "kind": "int", "value_cents": "int",
    "threshold_cents": "int", "valid_from_ms": "int", "status": "int",
    "score": "real", "weight": "real", "vector": "blob",
}
# The tags stream has a text column named "kind" too: a coupon's kind is an int, a tag's a text.
_TEXT_IN_STREAM = {(sync_pb2.STREAM_TAGS, "kind")}

# Stream → (Change oneof field, row converter).
_PAYLOADS = {
    sync_pb2.STREAM_MEMBERS: ("member", _member),
    sync_pb2.STREAM_TAGS: ("tag", _tag),
    sync_pb2.STREAM_TEMPLATES: ("template", _template),
    sync_pb2.STREAM_COUPONS: ("coupon", _coupon),
}


class SyncServicer(sync_pb2_grpc.SyncServicer):
    """Serves `Sync.Pull` and `Sync.Push` from a `Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> sync_pb2.PullResponse:
        """Per-stream changes after the device's cursors (held up to `wait_ms` when there are none)."""
        # Scope by certificate: a device reads only its own site (None on an insecure loopback server).
        auth.require_device(context, site_id=request.site_id or None)
        return self._translate(self._pull, request, context)

    def Push(self, request: sync_pb2.PushRequest, context: grpc.ServicerContext) -> sync_pb2.PushResponse:
        """Apply device events exactly once (see `cloud_stub.device_events`); one ack per event."""
        ident = auth.require_device(context, site_id=request.site_id or None, device_id=request.device_id or None)
        if ident is not None and not request.site_id:
            request.site_id = ident.site_id
        return self._translate(
            lambda req, _ctx: apply_push(self._storage, device_id=req.device_id, site_id=req.site_id,
                                         events=req.events, device_time_ms=req.device_time_ms),
            request, context)

    def Snapshot(self, request: sync_pb2.SnapshotRequest,
                 context: grpc.ServicerContext) -> Iterator[sync_pb2.SnapshotPage]:
        """The site's data as columnar pages read in one transaction; the last page has `done`."""
        auth.require_device(context, site_id=request.site_id or None)
        if not request.site_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "site_id is required: a device takes a snapshot of its own site only")
        if request.page_rows < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_rows must be >= 0, got {request.page_rows}")
        snapshot = getattr(self._storage, "snapshot", None)
        if snapshot is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this storage serves no snapshots; use Pull")
        rows = min(request.page_rows or SNAPSHOT_PAGE_ROWS, SNAPSHOT_PAGE_ROWS_CAP)
        pending: sync_pb2.SnapshotPage | None = None
        try:
            for stream, head, names, columns, count in snapshot(request.site_id, rows):
                # One page behind: the last page is only known when the scan ends, and carries `done`.
                if pending is not None:
                    yield pending
                pending = _page(stream, head, names, columns, count)
        except StorageBusyError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        except CloudError as err:
            log.exception("Snapshot failed for site %r", request.site_id)
            context.abort(grpc.StatusCode.INTERNAL, f"cloud storage error: {err}")
        assert pending is not None  # every stream yields at least one page
        pending.done = True
        yield pending

    def _translate(self, fn: Any, request: Any, context: grpc.ServicerContext) -> Any:
        """Translate our errors to gRPC status codes — the one boundary of this service."""
        try:
            return fn(request, context)
        except InvalidRequestError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except NotFoundError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, str(err))
        except StorageBusyError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        except _DeadlineExceeded as err:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(err))
        except CloudError as err:
            log.exception("Sync call failed for site %r", request.site_id)
            context.abort(grpc.StatusCode.INTERNAL, f"cloud storage error: {err}")
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    def _pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> sync_pb2.PullResponse:
        if not request.site_id:
            raise InvalidRequestError("site_id is required: a device pulls the data of its own site only")
        if request.max_changes < 0:
            raise InvalidRequestError(f"max_changes must be >= 0, got {request.max_changes}")
        if request.wait_ms < 0:
            raise InvalidRequestError(f"wait_ms must be >= 0, got {request.wait_ms}")
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
        # Cursors from a future this cloud never reached (restored from a backup, or another cloud):
        # deltas after them would miss rows, so the device must start over from a snapshot. The batches
        # still answer as before (empty, at the cursor) for a device that does not know the flag.
        response.snapshot_required = any(c.seq > head for c in request.cursors)
        caught_up = request.cursors and all(c.seq >= head for c in request.cursors)
        # Of the compensations the device still shows open, the ones closed here (cli_reconcile): they
        # answer a long poll at once; one closed during the wait goes with the answer after it.
        closures = closures_for(self._storage, request.device_id, request.open_compensation_ids)
        if request.wait_ms and caught_up and not response.snapshot_required and not closures:
            head = self._wait_for_change(head, request.wait_ms, context)
            closures = closures_for(self._storage, request.device_id, request.open_compensation_ids)
        response.closures.extend(sync_pb2.CompensationClosure(**c) for c in closures)
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

    def _wait_for_change(self, head: int, wait_ms: int, context: grpc.ServicerContext) -> int:
        """Hold a caught-up Pull until the head seq moves, the wait ends or the call goes away."""
        wait_s = min(wait_ms, MAX_WAIT_MS) / 1000
        remaining = context.time_remaining()
        if remaining is not None:
            wait_s = min(wait_s, remaining - WAIT_DEADLINE_MARGIN_S)
        end = time.monotonic() + wait_s
        while time.monotonic() < end and context.is_active():
            time.sleep(min(WAIT_POLL_S, max(0.0, end - time.monotonic())))
            now_head = self._storage.head_seq()
            if now_head != head:
                return now_head
        return head

"""The one gRPC boundary of the domain services: our errors → status codes, deadlines, row → message.

    InvalidRequestError → INVALID_ARGUMENT     NotFoundError → NOT_FOUND
    ConflictError       → FAILED_PRECONDITION  StorageBusyError → UNAVAILABLE (retry with backoff)
    DeadlineError       → DEADLINE_EXCEEDED    any other CloudError → INTERNAL
Oversized requests never reach a handler: the server refuses them with RESOURCE_EXHAUSTED
(`server.MAX_MESSAGE_BYTES`). Every domain call runs in one transaction, so an error leaves nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from cloud_stub.errors import (
    CloudError,
    ConflictError,
    DeadlineError,
    InvalidRequestError,
    NotFoundError,
    StorageBusyError,
)

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)

_CODES: list[tuple[type[CloudError], grpc.StatusCode]] = [
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (ConflictError, grpc.StatusCode.FAILED_PRECONDITION),
    (StorageBusyError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
]


def deadline_check(context: grpc.ServicerContext) -> Callable[[], None]:
    """A callable that raises DeadlineError once the caller's deadline has passed."""

    def check() -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineError("the call's deadline passed before the work was done; nothing was written")

    return check


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method: check the deadline first, translate our errors to status codes."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            deadline_check(context)()
            return fn(self, request, context)
        except CloudError as err:
            for kind, code in _CODES:
                if isinstance(err, kind):
                    context.abort(code, str(err))
            log.exception("%s failed", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"cloud error: {err}")
        raise AssertionError("unreachable: context.abort raises")  # pragma: no cover

    return wrapper


def to_msg(cls: type[M], row: dict[str, Any], **extra: Any) -> M:
    """A message of `cls` from the keys of `row` (and `extra`) that are fields of it."""
    fields = cls.DESCRIPTOR.fields_by_name
    values = {k: v for k, v in {**row, **extra}.items() if k in fields and v is not None}
    return cls(**values)

"""Exceptions of the reference cloud: one root, `CloudError`, for everything `cloud_stub` raises.

Library errors (sqlite3, grpc, cryptography, OS) are translated into these at one boundary each,
with `raise … from err`, so callers catch `CloudError` and never a library type.
"""

from __future__ import annotations


class CloudError(Exception):
    """Root of every error raised by `cloud_stub`."""


class NotFoundError(CloudError):
    """A row the caller named (member, consent, template, …) does not exist."""


class InvalidRequestError(CloudError):
    """The request is malformed or not allowed in the current state (e.g. a template without consent)."""


class StorageError(CloudError):
    """The storage backend failed (corrupt or unreadable file, disk full, …)."""


class StorageBusyError(StorageError):
    """The storage backend is temporarily unavailable (locked by another writer); retrying may succeed."""


class ConflictError(CloudError):
    """The request is well-formed but the current state forbids it (coupon already redeemed, expired,
    idempotency key reused with other parameters, …). Retrying the same request will not help."""


class DeadlineError(CloudError):
    """The caller's deadline passed before the work was done; nothing was written."""

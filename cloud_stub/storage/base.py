"""The storage interface of the reference cloud: stream ids, the `Change` row type, and `Storage`.

Also the value helpers every backend shares, so a PostgreSQL `Storage` would hash phones and
encode template vectors exactly as `SqliteStorage` does: `now_ms`, `phone_hash`, `vector_bytes`.
"""

from __future__ import annotations

import abc
import hashlib
import struct
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from api.v1 import crm_pb2, sync_pb2
from cloud_stub.errors import InvalidRequestError

STREAM_MEMBERS = sync_pb2.STREAM_MEMBERS
STREAM_TAGS = sync_pb2.STREAM_TAGS
STREAM_TEMPLATES = sync_pb2.STREAM_TEMPLATES
STREAM_COUPONS = sync_pb2.STREAM_COUPONS
STREAMS = (STREAM_MEMBERS, STREAM_TAGS, STREAM_TEMPLATES, STREAM_COUPONS)

#: A change as served by `Storage.changes`: (seq, key, deleted, row or None for a tombstone).
Change = tuple[int, str, bool, "dict[str, Any] | None"]


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def phone_hash(phone: str) -> str:
    """A stable hash of a phone number's digits (the full number is never stored)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return hashlib.sha256(f"joyedge-phone:{digits}".encode()).hexdigest() if digits else ""


def vector_bytes(vector: bytes | bytearray | memoryview | Sequence[float]) -> bytes:
    """float32 little-endian bytes of a vector given as bytes or as a sequence of floats (numpy too)."""
    if isinstance(vector, (bytes, bytearray, memoryview)):
        data = bytes(vector)
    else:
        values = [float(v) for v in vector]
        data = struct.pack(f"<{len(values)}f", *values)
    if not data or len(data) % 4:
        raise InvalidRequestError(
            f"template vector must be non-empty float32 bytes, got {len(data)} bytes"
        )
    return data


class Storage(abc.ABC):
    """What the reference cloud needs from a database. SQLite by default; PostgreSQL can serve a fleet.

    Writes return the change seq they were given. Every write is atomic.
    """

    # --- sites and stores -------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_site(self, site_id: str, name: str) -> None:
        """Create or rename a site."""

    @abc.abstractmethod
    def upsert_store(self, store_id: str, site_id: str, name: str, brand: str | None = None) -> None:
        """Create or rename a store of an existing site (NotFoundError when the site is unknown).

        `brand` None keeps the store's brand (a new store gets "").
        """

    @abc.abstractmethod
    def list_stores(self, site_id: str) -> list[dict[str, Any]]:
        """The stores of a site, ordered by store_id."""

    # --- members ----------------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_member(
        self,
        *,
        member_id: str,
        site_id: str,
        name: str,
        tier: str = "普卡",
        points: int = 0,
        tier_keep_points: int = 0,
        phone: str | None = None,
        phone_last4: str | None = None,
        gender: str = "",
        birthday: str = "",
        updated_at_ms: int | None = None,
    ) -> int:
        """Create or update a member. `phone` is hashed; only its last 4 digits are kept in clear."""

    @abc.abstractmethod
    def get_member(self, member_id: str) -> dict[str, Any]:
        """One member row (NotFoundError when absent)."""

    @abc.abstractmethod
    def list_members(self, site_id: str | None = None) -> list[dict[str, Any]]:
        """Members (of one site, or all) ordered by member_id, each with a `templates` count."""

    @abc.abstractmethod
    def delete_member(self, member_id: str) -> int:
        """Delete a member with its tags, templates and coupons (tombstones for each); withdraws consents."""

    # --- tags -------------------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_tag(
        self,
        *,
        tag_id: str,
        member_id: str,
        kind: str,
        value: str,
        score: float = 0.0,
        computed_at_ms: int | None = None,
        valid_until_ms: int = 0,
    ) -> int:
        """Create or update a tag of an existing member."""

    @abc.abstractmethod
    def delete_tag(self, tag_id: str) -> int:
        """Delete a tag (tombstone)."""

    # --- consent and templates --------------------------------------------------------------
    @abc.abstractmethod
    def add_consent(
        self,
        *,
        member_id: str,
        device_id: str,
        text_version: str,
        agreed_at_ms: int | None = None,
        consent_id: str | None = None,
    ) -> str:
        """Record a member's consent to face recognition; returns the consent id."""

    @abc.abstractmethod
    def add_template(
        self,
        *,
        member_id: str,
        consent_id: str,
        model: str,
        vector: bytes | Sequence[float],
        template_id: str | None = None,
        weight: float = 1.0,
        created_at_ms: int | None = None,
    ) -> str:
        """Store a face template under an existing, not withdrawn consent of that member; returns its id."""

    @abc.abstractmethod
    def delete_template(self, template_id: str) -> int:
        """Delete one template (tombstone)."""

    @abc.abstractmethod
    def withdraw_consent(self, member_id: str) -> int:
        """Withdraw every consent of a member and delete their templates; returns how many were deleted."""

    # --- coupons ----------------------------------------------------------------------------
    @abc.abstractmethod
    def upsert_coupon(
        self,
        *,
        coupon_id: str,
        member_id: str,
        title: str,
        kind: int,
        value_cents: int,
        threshold_cents: int = 0,
        store_ids: Sequence[str] = (),
        valid_from_ms: int,
        valid_until_ms: int,
        usage_hint: str = "",
        status: int = crm_pb2.COUPON_STATUS_ISSUED,
        campaign_id: str = "",
    ) -> int:
        """Create or update a coupon of an existing member."""

    @abc.abstractmethod
    def delete_coupon(self, coupon_id: str) -> int:
        """Delete a coupon (tombstone)."""

    # --- replication ------------------------------------------------------------------------
    @abc.abstractmethod
    def changes(
        self, stream: int, site_id: str, after_seq: int, limit: int
    ) -> tuple[list[Change], bool]:
        """Up to `limit` changes of `stream` for `site_id` with seq > `after_seq`, in seq order.

        Returns (changes, has_more); each change is (seq, key, deleted, row dict or None).
        """

    # --- domain transactions ------------------------------------------------------------------
    @abc.abstractmethod
    def transaction(self, what: str, *, write: bool = True) -> AbstractContextManager[Any]:
        """One atomic transaction for the domain modules (CRM, tags, marketing, credit, fusion, payment,
        registry): a DB-API connection, committed on success, rolled back on any error, whose errors
        come out as `StorageError`. Write transactions are serialised with every other writer, so the
        change sequence stays in commit order (see schema.py; PostgreSQL: row lock on seq_counter).
        """

    @abc.abstractmethod
    def head_seq(self) -> int:
        """The latest change seq committed (cheap; called on every pull). Every later write gets a
        larger seq and writes commit in seq order, so a stream with no change up to `head_seq` can
        advance its cursor to it."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (nothing to do for a connection-per-call backend)."""

"""Storage of the reference cloud: one abstract `Storage` interface, and `SqliteStorage` behind it.

Import from here (`from cloud_stub.storage import SqliteStorage, Storage, ...`); the modules are:

    base.py     the `Storage` interface, stream ids, the `Change` type, and value helpers
                (`now_ms`, `phone_hash`, template vector bytes) every backend shares
    schema.py   SQLite migrations, the table of each stream, and the change sequence they implement
    db.py       SQLite connections, transactions, error translation, seq counter and tombstones
    crypto.py   face templates sealed at rest with AES-256-GCM, and the `<db>.key` file
    sqlite.py   `SqliteStorage`, the `Storage` the reference cloud runs on
"""

from cloud_stub.storage.base import (
    STREAM_COUPONS,
    STREAM_MEMBERS,
    STREAM_TAGS,
    STREAM_TEMPLATES,
    STREAMS,
    Change,
    Storage,
    now_ms,
    phone_hash,
)
from cloud_stub.storage.db import BUSY_TIMEOUT_MS
from cloud_stub.storage.schema import MIGRATIONS
from cloud_stub.storage.sqlite import SqliteStorage

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "STREAMS",
    "STREAM_COUPONS",
    "STREAM_MEMBERS",
    "STREAM_TAGS",
    "STREAM_TEMPLATES",
    "Change",
    "SqliteStorage",
    "Storage",
    "now_ms",
    "phone_hash",
]

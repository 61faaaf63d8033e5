"""Device registry: sites, stores, devices and single-use claim tokens.

A claim token is shown once, in clear, to the installer; the cloud keeps only its SHA-256. Claiming
binds a device id to the token's site, store and profile; a token works once and until it expires.
(`cloud_stub.enrollment` claims and issues the device certificate in one transaction.)
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from cloud_stub import validate
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms

PROFILES = ("pos-flagship", "pos-mobile", "mirror")
DEFAULT_TOKEN_TTL_S = 24 * 3600
MAX_TOKEN_TTL_S = 30 * 24 * 3600


def _hash(token: str) -> str:
    return hashlib.sha256(f"joyedge-claim:{token}".encode()).hexdigest()


def token_hash(token: str) -> str:
    """The stored form of a claim token (its salted SHA-256)."""
    return _hash(token)


def create_claim_token(storage: Storage, *, site_id: str, store_id: str, profile: str, ttl_s: int = 0) -> dict[str, Any]:
    """A new claim token for one device of `profile` in `store_id`."""
    validate.ident(site_id, "site_id")
    validate.ident(store_id, "store_id")
    if profile not in PROFILES:
        raise InvalidRequestError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    ttl = ttl_s or DEFAULT_TOKEN_TTL_S
    if not 0 < ttl <= MAX_TOKEN_TTL_S:
        raise InvalidRequestError(f"ttl_s must be between 1 and {MAX_TOKEN_TTL_S} seconds, got {ttl_s}")
    # A prefix keeps a token from starting with "-", which a shell command line would read as an option.
    token = "jc-" + secrets.token_urlsafe(24)
    now = now_ms()
    with storage.transaction("create claim token") as conn:
        got = conn.execute("SELECT site_id FROM stores WHERE store_id = ?", (store_id,)).fetchone()
        if got is None or got[0] != site_id:
            raise NotFoundError(f"store {store_id!r} is not a store of site {site_id!r}")
        conn.execute(
            "INSERT INTO claim_tokens (token_hash, site_id, store_id, profile, created_at_ms, expires_at_ms,"
            " used_by, used_at_ms) VALUES (?, ?, ?, ?, ?, ?, '', 0)",
            (_hash(token), site_id, store_id, profile, now, now + ttl * 1000),
        )
    return {"token": token, "site_id": site_id, "store_id": store_id, "profile": profile,
            "expires_at_ms": now + ttl * 1000}


def claim_device(storage: Storage, *, token: str, device_id: str, name: str = "") -> dict[str, Any]:
    """Bind `device_id` with a claim token. Retrying with the same token and device id is a no-op."""
    validate.ident(device_id, "device_id")
    validate.text(name, "name", max_len=100)
    if not token or len(token) > 200:
        raise InvalidRequestError("token is required (the claim token the installer was given)")
    with storage.transaction("claim device") as conn:
        return claim_device_conn(conn, token=token, device_id=device_id, name=name)[0]


def claim_device_conn(conn: Any, *, token: str, device_id: str, name: str = "") -> tuple[dict[str, Any], bool]:
    """`claim_device` on an open transaction (so enrollment can issue the certificate in the same one).

    Returns the device row and whether this call claimed it (False: a retry by the same device).
    """
    now = now_ms()
    row = conn.execute("SELECT * FROM claim_tokens WHERE token_hash = ?", (_hash(token),)).fetchone()
    if row is None:
        raise NotFoundError("unknown claim token; ask the operator for a new one")
    if row["used_by"]:
        if row["used_by"] == device_id:
            return get_device_conn(conn, device_id), False
        raise ConflictError("this claim token was already used by another device; ask for a new one")
    if row["expires_at_ms"] < now:
        raise ConflictError("this claim token has expired; ask the operator for a new one")
    if conn.execute("SELECT 1 FROM devices WHERE device_id = ?", (device_id,)).fetchone():
        raise ConflictError(f"device {device_id!r} is already registered; factory-reset it first")
    conn.execute("UPDATE claim_tokens SET used_by = ?, used_at_ms = ? WHERE token_hash = ?",
                 (device_id, now, row["token_hash"]))
    conn.execute(
        "INSERT INTO devices (device_id, site_id, store_id, profile, name, claimed_at_ms, last_seen_at_ms,"
        " software_version) VALUES (?, ?, ?, ?, ?, ?, ?, '')",
        (device_id, row["site_id"], row["store_id"], row["profile"], name, now, now),
    )
    return get_device_conn(conn, device_id), True


def get_device_conn(conn: Any, device_id: str) -> dict[str, Any]:
    """A device row read on an open connection (NotFoundError when absent)."""
    row = conn.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"device {device_id!r} is not registered")
    return dict(row)


def get_device(storage: Storage, device_id: str) -> dict[str, Any]:
    """A registered device."""
    validate.ident(device_id, "device_id")
    with storage.transaction("get device", write=False) as conn:
        return get_device_conn(conn, device_id)


def list_devices(storage: Storage, site_id: str) -> list[dict[str, Any]]:
    """The devices of a site, by id."""
    validate.ident(site_id, "site_id")
    with storage.transaction("list devices", write=False) as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM devices WHERE site_id = ? ORDER BY device_id", (site_id,))]


def heartbeat(storage: Storage, device_id: str, software_version: str = "") -> dict[str, Any]:
    """Record that a device is alive (and its software version)."""
    validate.ident(device_id, "device_id")
    validate.text(software_version, "software_version", max_len=64)
    with storage.transaction("heartbeat") as conn:
        get_device_conn(conn, device_id)
        conn.execute("UPDATE devices SET last_seen_at_ms = ?, software_version = ? WHERE device_id = ?",
                     (now_ms(), software_version, device_id))
        return get_device_conn(conn, device_id)

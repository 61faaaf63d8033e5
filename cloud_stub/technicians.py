"""Technician certificates (issue 8): short-lived client certificates with the role `technician`,
which the device admin API accepts for devices of the same site.

Two ways to get one:

- `joyedge-cloud ca issue-technician NAME --site-id S --hours H --out DIR` — the operator makes the
  key and certificate on the cloud host and hands the directory over (offline use).
- `joyedge-cloud ca issue-technician-token NAME --site-id S --hours H` — a one-time login token; the
  technician runs `joyprov login --cloud HOST:ENROLL_PORT --token T --ca-file ca.pem`, which makes
  the key on the technician's laptop and sends only a CSR (`TechnicianLogin/Login`, enrollment port).
  The token is stored as a hash, works once, expires (default 1 h), and fixes site, name and the
  certificate's lifetime: the technician chooses nothing but the key.

Every certificate is recorded in `certificates` (listed by `ca list`, revocable by `ca revoke`).
Devices cannot ask the cloud's revocation table from a mall LAN that may be offline, so the real
limit is the lifetime: at most `MAX_TECHNICIAN_HOURS`.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api import pki
from cloud_stub import validate
from cloud_stub.auth import ROLE_TECHNICIAN
from cloud_stub.ca import (
    CLOCK_SKEW_S,
    CertificateAuthority,
    _pem,
    record_certificate,
)
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms

#: Longest technician certificate (a working day); the default is shorter.
MAX_TECHNICIAN_HOURS = 12.0
DEFAULT_TECHNICIAN_HOURS = 8.0
#: How long a login token may wait to be used.
DEFAULT_LOGIN_TOKEN_TTL_S = 3600
MAX_LOGIN_TOKEN_TTL_S = 7 * 24 * 3600


def _hours(hours: float) -> float:
    if not 0 < hours <= MAX_TECHNICIAN_HOURS:
        raise InvalidRequestError(f"--hours must be more than 0 and at most {MAX_TECHNICIAN_HOURS:g}, got {hours:g}")
    return hours


def _token_hash(token: str) -> str:
    return hashlib.sha256(b"joyedge/technician-login/" + token.encode()).hexdigest()


def sign_technician(ca: CertificateAuthority, csr_pem: str | bytes, *, site_id: str, name: str, hours: float,
                    not_before: datetime | None = None) -> Any:
    """A technician certificate for the CSR's key (validity `hours`; `not_before` for tests)."""
    validate.ident(site_id, "site_id")
    validate.ident(name, "name")
    start = not_before or datetime.now(UTC) - timedelta(seconds=CLOCK_SKEW_S)
    return ca.sign_csr(csr_pem, role=ROLE_TECHNICIAN, site_id=site_id, name=name,
                       validity_s=int(_hours(hours) * 3600) + CLOCK_SKEW_S, not_before=start)


def issue_technician(storage: Storage, ca: CertificateAuthority, out_dir: str | Path, *, site_id: str, name: str,
                     hours: float = DEFAULT_TECHNICIAN_HOURS) -> dict[str, Any]:
    """Key + certificate made here, written to `out_dir` (technician.key 0600, technician.pem, ca.pem)."""
    key = pki.new_key()
    cert = sign_technician(ca, pki.build_csr(key, name or "technician"), site_id=site_id,
                           name=name, hours=hours)
    with storage.transaction("issue technician certificate") as conn:
        row = record_certificate(conn, cert)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki.write_private(out / "technician.key", pki.key_pem(key))
    (out / "technician.pem").write_bytes(_pem(cert))
    (out / "ca.pem").write_bytes(ca.ca_pem)
    return {"dir": str(out), "serial": row["serial"], "site_id": site_id, "name": name,
            "not_after_ms": row["not_after_ms"]}


def create_login_token(storage: Storage, *, site_id: str, name: str, hours: float = DEFAULT_TECHNICIAN_HOURS,
                       ttl_s: int = 0) -> dict[str, Any]:
    """A one-time token `joyprov login` exchanges for a `hours`-long certificate of `name` at `site_id`."""
    validate.ident(site_id, "site_id")
    validate.ident(name, "name")
    _hours(hours)
    ttl = ttl_s or DEFAULT_LOGIN_TOKEN_TTL_S
    if not 0 < ttl <= MAX_LOGIN_TOKEN_TTL_S:
        raise InvalidRequestError(f"ttl_s must be between 1 and {MAX_LOGIN_TOKEN_TTL_S}, got {ttl_s}")
    token = "jt-" + secrets.token_urlsafe(24)
    now = now_ms()
    with storage.transaction("create technician login token") as conn:
        conn.execute("INSERT INTO technician_tokens (token_hash, site_id, name, cert_hours, created_at_ms,"
                     " expires_at_ms, used_serial, used_at_ms) VALUES (?, ?, ?, ?, ?, ?, '', 0)",
                     (_token_hash(token), site_id, name, hours, now, now + ttl * 1000))
    return {"token": token, "site_id": site_id, "name": name, "hours": hours, "expires_at_ms": now + ttl * 1000}


def login(storage: Storage, ca: CertificateAuthority, *, login_token: str, csr_pem: str) -> dict[str, Any]:
    """Spend a login token on a certificate for the CSR's key; the TechnicianLoginResponse fields."""
    if not login_token or len(login_token) > 200:
        raise InvalidRequestError("login_token is required (from `joyedge-cloud ca issue-technician-token`)")
    with storage.transaction("technician login") as conn:
        row = conn.execute("SELECT * FROM technician_tokens WHERE token_hash = ?",
                           (_token_hash(login_token),)).fetchone()
        if row is None:
            raise NotFoundError("unknown login token; ask the operator for a new one")
        if row["used_serial"]:
            raise ConflictError("this login token has already been used; ask the operator for a new one")
        if row["expires_at_ms"] < now_ms():
            raise ConflictError("this login token has expired; ask the operator for a new one")
        cert = sign_technician(ca, csr_pem, site_id=row["site_id"], name=row["name"], hours=row["cert_hours"])
        rec = record_certificate(conn, cert)
        conn.execute("UPDATE technician_tokens SET used_serial = ?, used_at_ms = ? WHERE token_hash = ?",
                     (rec["serial"], now_ms(), row["token_hash"]))
    return {"certificate_pem": rec["certificate_pem"], "ca_pem": ca.ca_pem.decode(), "site_id": row["site_id"],
            "name": row["name"], "not_after_ms": rec["not_after_ms"], "serial": rec["serial"]}


def audit_trail(storage: Storage, device_id: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """Admin actions devices reported (newest first)."""
    with storage.transaction("read admin audit", write=False) as conn:
        rows = conn.execute("SELECT * FROM admin_audit WHERE (? = '' OR device_id = ?) ORDER BY at_ms DESC"
                            " LIMIT ?", (device_id, device_id, limit)).fetchall()
    return [dict(r) for r in rows]

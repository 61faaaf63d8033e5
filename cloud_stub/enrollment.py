"""Enrollment: a claim token and a CSR become a device and its mTLS certificate, in one transaction;
rotation gives an enrolled device a new certificate for a new key, keeping its identity.

A claim token works once. A retry after a lost answer (same token, a CSR for the same key) gets the
certificate that was issued; any other reuse is refused.

Rotation revokes the old certificate: `ca.ROTATION_GRACE_S` after the device first presents the new
one (calls in flight on the old channel finish), at the latest `ca.ROTATION_CLAIM_S` after issuing
it. Until the device has used the new certificate, a retry with the same key (a lost answer) gets the
same new certificate again; a different key is refused (one outstanding successor per certificate).
"""

from __future__ import annotations

from typing import Any

from cloud_stub import ca as ca_module
from cloud_stub import registry, validate
from cloud_stub.auth import ROLE_DEVICE, PeerIdentity
from cloud_stub.ca import (
    DEVICE_CERT_VALIDITY_S,
    CertificateAuthority,
    new_device_id,
    public_key_sha256,
    record_certificate,
    serial_hex,
)
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms


def _csr_key_hash(csr_pem: str) -> str:
    from cryptography import x509

    try:
        return public_key_sha256(x509.load_pem_x509_csr(csr_pem.encode()).public_key())
    except ValueError as err:
        raise InvalidRequestError(f"csr_pem is not a PEM certificate signing request: {err}") from err


def _answer(cert_row: dict[str, Any], device: dict[str, Any], ca_pem: bytes) -> dict[str, Any]:
    return {
        "certificate_pem": cert_row["certificate_pem"], "ca_pem": ca_pem.decode(),
        "device_id": device["device_id"], "site_id": device["site_id"], "store_id": device["store_id"],
        "profile": device["profile"], "not_after_ms": cert_row["not_after_ms"], "serial": cert_row["serial"],
    }


def enroll(storage: Storage, ca: CertificateAuthority, *, claim_token: str, csr_pem: str, device_id: str = "",
           name: str = "", validity_s: int = DEVICE_CERT_VALIDITY_S) -> dict[str, Any]:
    """Claim with `claim_token` and sign `csr_pem`; the EnrollResponse fields as a dict."""
    if not claim_token or len(claim_token) > 200:
        raise InvalidRequestError("claim_token is required (the token the installer was given)")
    if device_id:
        validate.ident(device_id, "device_id")
    validate.text(name, "name", max_len=100)
    key_hash = _csr_key_hash(csr_pem)
    with storage.transaction("enroll device") as conn:
        tok = conn.execute("SELECT used_by FROM claim_tokens WHERE token_hash = ?",
                           (registry.token_hash(claim_token),)).fetchone()
        if tok is not None and tok["used_by"]:
            used_by = tok["used_by"]
            prev = conn.execute(
                "SELECT * FROM certificates WHERE device_id = ? AND public_key_sha256 = ? AND revoked_at_ms = 0"
                " AND replaces = '' ORDER BY issued_at_ms DESC LIMIT 1", (used_by, key_hash)).fetchone()
            if prev is not None and device_id in ("", used_by):
                return _answer(dict(prev), registry.get_device_conn(conn, used_by), ca.ca_pem)
            raise ConflictError("this claim token has already been used; ask the operator for a new one")
        device, _ = registry.claim_device_conn(conn, token=claim_token, device_id=device_id or new_device_id(),
                                               name=name)
        cert = ca.sign_csr(csr_pem, role=ROLE_DEVICE, site_id=device["site_id"], store_id=device["store_id"],
                           device_id=device["device_id"], validity_s=validity_s)
        row = record_certificate(conn, cert)
        return _answer(row, device, ca.ca_pem)


def rotate(storage: Storage, ca: CertificateAuthority, caller: PeerIdentity, *, csr_pem: str,
           validity_s: int = DEVICE_CERT_VALIDITY_S) -> dict[str, Any]:
    """A new certificate with the caller's identity for the new key in `csr_pem`; schedules the
    revocation of the calling certificate (module docstring)."""
    key_hash = _csr_key_hash(csr_pem)
    now = now_ms()
    with storage.transaction("rotate certificate") as conn:
        old = conn.execute("SELECT * FROM certificates WHERE serial = ?", (serial_hex(caller.serial),)).fetchone()
        if old is None or 0 < old["revoked_at_ms"] <= now:
            raise NotFoundError("the calling certificate is not on record or was revoked; enroll again")
        successor = conn.execute(
            "SELECT * FROM certificates WHERE replaces = ? AND (revoked_at_ms = 0 OR revoked_at_ms > ?)"
            " ORDER BY issued_at_ms DESC LIMIT 1", (old["serial"], now)).fetchone()
        if successor is not None:
            if successor["public_key_sha256"] == key_hash:  # a retry after a lost answer
                return _answer(dict(successor), registry.get_device_conn(conn, caller.device_id), ca.ca_pem)
            raise ConflictError(f"certificate {old['serial']} was already rotated to {successor['serial']} for"
                                " another key; use that certificate (or enroll again if its key is lost)")
        if old["revoked_at_ms"]:
            raise NotFoundError("the calling certificate is being revoked; use its successor or enroll again")
        if old["public_key_sha256"] == key_hash:
            raise InvalidRequestError("rotation needs a new key: the CSR reuses the current certificate's key")
        device = registry.get_device_conn(conn, caller.device_id)
        if (device["site_id"], device["store_id"]) != (caller.site_id, caller.store_id):
            raise ConflictError(f"device {caller.device_id} was moved to another store; enroll it again")
        cert = ca.sign_csr(csr_pem, role=ROLE_DEVICE, site_id=caller.site_id, store_id=caller.store_id,
                           device_id=caller.device_id, validity_s=validity_s)
        row = record_certificate(conn, cert, replaces=old["serial"])
        conn.execute("UPDATE certificates SET revoked_at_ms = ?, revoke_reason = ? WHERE serial = ?",
                     (now + int(ca_module.ROTATION_CLAIM_S * 1000), f"rotated to {row['serial']} (not yet used)", old["serial"]))
        return _answer(row, device, ca.ca_pem)

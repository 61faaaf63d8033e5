"""The reference cloud's certificate authority: CA and server certificates, device certificates
signed from CSRs, and the record of every certificate issued (the revocation list) in storage.

    joyedge-cloud ca init --dir var/ca [--host cloud.example.com]

`<dir>` then holds `ca.key` and `server.key` (0600, never leave the cloud), `ca.pem` (the trust
anchor devices are provisioned with) and `server.pem` (for the cloud's host names, always including
localhost, 127.0.0.1 and ::1). Keys are EC P-256 / ECDSA-SHA256: what BoringSSL (gRPC) and every
TLS stack handle.

The identity in a device certificate comes from the cloud (claim token → site, store, device id),
never from the CSR: the CSR contributes only its public key, proven by its signature.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from api import pki
from api.admin import device_tls_name
from cloud_stub.auth import ROLE_DEVICE, AuthError, identity_uri
from cloud_stub.errors import CloudError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms

#: Device certificates are short-lived so that rotation is exercised and a lost key ages out.
DEVICE_CERT_VALIDITY_S = 30 * 24 * 3600
#: Server certificate validity.
SERVER_CERT_VALIDITY_S = 365 * 24 * 3600
#: CA certificate validity.
CA_CERT_VALIDITY_S = 10 * 365 * 24 * 3600
#: Certificates start this much in the past, so a device whose clock is a little behind accepts them.
CLOCK_SKEW_S = 300
#: After a rotation the old certificate is revoked this long after the device first presents the new
#: one: calls it started on the old channel (long poll 10 s, payments 5 s, quick retries) finish.
#: A call's certificate is checked when the call starts, so a stream already running is never cut.
ROTATION_GRACE_S = 120.0
#: ...and at the latest this long after the new one was issued, even if the device never used it.
#: Until then a device that lost the RotateCertificate answer gets it again by retrying with the
#: same key (the daemon retries every 10 min), instead of being stranded with a revoked certificate.
ROTATION_CLAIM_S = 24 * 3600.0
#: Largest CSR accepted (a P-256 CSR is ~400 bytes of PEM).
MAX_CSR_BYTES = 8192
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")

log = logging.getLogger(__name__)


class CaError(CloudError):
    """The CA is missing, damaged, or refused to sign."""


def _pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def public_key_sha256(public_key: Any) -> str:
    """Hex SHA-256 of a public key's DER SubjectPublicKeyInfo (binds a certificate to its key)."""
    return hashlib.sha256(pki.spki_der(public_key)).hexdigest()


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JoyEdge"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


@dataclass(frozen=True)
class CaPaths:
    """Files of a CA directory."""

    dir: Path

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"


def init_ca(ca_dir: str | Path, hosts: tuple[str, ...] = (), *, now: datetime | None = None) -> CaPaths:
    """Create a CA key + certificate and a server certificate for `hosts` (plus localhost/loopback).

    Refuses to overwrite an existing CA: every issued certificate hangs off that key.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    paths = CaPaths(Path(ca_dir))
    if paths.ca_key.exists():
        raise CaError(f"a CA already exists in {paths.dir}; refusing to replace it (devices trust its key)")
    try:
        paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        t0 = now or datetime.now(UTC)
        key = pki.new_key()
        name = _name("JoyEdge reference cloud CA")
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t0 - timedelta(seconds=CLOCK_SKEW_S))
            .not_valid_after(t0 + timedelta(seconds=CA_CERT_VALIDITY_S))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        pki.write_private(paths.ca_key, pki.key_pem(key))
        paths.ca_cert.write_bytes(_pem(cert))
        CertificateAuthority(paths.dir).issue_server_cert(hosts, now=t0)
    except OSError as err:
        raise CaError(f"cannot write the CA into {paths.dir}: {err.strerror}") from err
    return paths


class CertificateAuthority:
    """Signs certificates with the CA key in `ca_dir` (loaded on first use)."""

    def __init__(self, ca_dir: str | Path) -> None:
        self.paths = CaPaths(Path(ca_dir))
        self._key: Any = None
        self._cert: Any = None

    def _load(self) -> tuple[Any, Any]:
        if self._key is None:
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            try:
                self._key = serialization.load_pem_private_key(self.paths.ca_key.read_bytes(), password=None)
                self._cert = x509.load_pem_x509_certificate(self.paths.ca_cert.read_bytes())
            except OSError as err:
                raise CaError(f"no CA in {self.paths.dir} ({err.strerror}); run `joyedge-cloud ca init`") from err
            except ValueError as err:
                raise CaError(f"the CA in {self.paths.dir} is damaged: {err}") from err
        return self._key, self._cert

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (trust anchor) as PEM."""
        return _pem(self._load()[1])

    def _builder(self, subject: Any, public_key: Any, not_before: datetime, not_after: datetime) -> Any:
        from cryptography import x509

        key, ca = self._load()
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        )

    def issue_server_cert(self, hosts: tuple[str, ...] = (), *, now: datetime | None = None) -> None:
        """(Re)write `server.key` + `server.pem` for `hosts` plus localhost and the loopback addresses."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        names: list[x509.GeneralName] = []
        for host in dict.fromkeys((*DEFAULT_HOSTS, *hosts)):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        t0 = now or datetime.now(UTC)
        key = pki.new_key()
        cert = (
            self._builder(_name(hosts[0] if hosts else "localhost"), key.public_key(),
                          t0 - timedelta(seconds=CLOCK_SKEW_S), t0 + timedelta(seconds=SERVER_CERT_VALIDITY_S))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._load()[0], hashes.SHA256())
        )
        pki.write_private(self.paths.server_key, pki.key_pem(key))
        self.paths.server_cert.write_bytes(_pem(cert))

    def sign_csr(self, csr_pem: bytes | str, *, role: str = ROLE_DEVICE, site_id: str = "", store_id: str = "",
                 device_id: str = "", name: str = "", validity_s: int = DEVICE_CERT_VALIDITY_S,
                 not_before: datetime | None = None) -> Any:
        """A client certificate for the CSR's key, naming the identity given here (not the CSR's).

        `not_before` defaults to now minus the clock-skew allowance; tests pass a past one to get an
        expired certificate. InvalidRequestError when the CSR is malformed, unsigned or weak.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID

        data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
        if not data or len(data) > MAX_CSR_BYTES:
            raise InvalidRequestError(f"csr_pem must be a PEM CSR of at most {MAX_CSR_BYTES} bytes")
        try:
            csr = x509.load_pem_x509_csr(data)
        except ValueError as err:
            raise InvalidRequestError(f"csr_pem is not a PEM certificate signing request: {err}") from err
        if not csr.is_signature_valid:
            raise InvalidRequestError("the CSR's signature does not match its key (it must be signed by the device key)")
        public_key = csr.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            if public_key.curve.name not in ("secp256r1", "secp384r1"):
                raise InvalidRequestError(f"EC keys must be P-256 or P-384, got {public_key.curve.name}")
        elif isinstance(public_key, rsa.RSAPublicKey):
            if public_key.key_size < 2048:
                raise InvalidRequestError(f"RSA keys must have at least 2048 bits, got {public_key.key_size}")
        else:
            raise InvalidRequestError("the CSR key must be EC P-256/P-384 or RSA ≥ 2048")
        try:
            uri = identity_uri(role, site_id=site_id, store_id=store_id, device_id=device_id, name=name)
        except AuthError as err:
            raise InvalidRequestError(str(err)) from err
        start = not_before or datetime.now(UTC) - timedelta(seconds=CLOCK_SKEW_S)
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if role == ROLE_DEVICE:
            # A device also serves its admin API with this certificate (issue 8): serverAuth, and a
            # DNS name gRPC can check (a URI SAN is never matched as a host name). See api/admin.py.
            sans.append(x509.DNSName(device_tls_name(site_id, device_id)))
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        return (
            self._builder(_name(device_id or name), public_key, start, start + timedelta(seconds=validity_s))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self._load()[0], hashes.SHA256())
        )


# --- the record of issued certificates (revocation list) -------------------------------------------

def serial_hex(serial: int) -> str:
    """The canonical text form of a serial number (lowercase hex)."""
    return f"{serial:x}"


def record_certificate(conn: Any, cert: Any, *, replaces: str = "") -> dict[str, Any]:
    """Store an issued certificate on an open transaction (`Storage.transaction`)."""
    from cloud_stub.auth import identity_from_pem

    pem = _pem(cert)
    ident = identity_from_pem(pem)
    row = {
        "serial": serial_hex(cert.serial_number), "role": ident.role, "site_id": ident.site_id,
        "store_id": ident.store_id, "device_id": ident.device_id, "name": ident.name,
        "public_key_sha256": public_key_sha256(cert.public_key()), "certificate_pem": pem.decode(),
        "not_after_ms": int(cert.not_valid_after_utc.timestamp() * 1000), "issued_at_ms": now_ms(),
        "replaces": replaces, "revoked_at_ms": 0, "revoke_reason": "",
    }
    conn.execute(f"INSERT INTO certificates ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))
    return row


def _revoked(revoked_at_ms: int, now: int) -> bool:
    # revoked_at_ms: 0 = valid; in the future = revocation scheduled (a rotated certificate's grace).
    return 0 < revoked_at_ms <= now


def is_revoked(storage: Storage, serial: int) -> bool:
    """True when the certificate was revoked — or was never recorded by this cloud (fail closed)."""
    with storage.transaction("check certificate", write=False) as conn:
        row = conn.execute("SELECT revoked_at_ms FROM certificates WHERE serial = ?", (serial_hex(serial),)).fetchone()
    return row is None or _revoked(row[0], now_ms())


def certificate_gate(storage: Storage) -> Callable[[int], bool]:
    """The `is_revoked` hook of `auth.AuthInterceptor`: `is_revoked`, plus the first use of a rotated
    certificate brings its predecessor's revocation forward to now + ROTATION_GRACE_S (one write per
    rotation; the device has proven it holds the new certificate)."""

    def refused(serial: int) -> bool:
        now = now_ms()
        with storage.transaction("check certificate", write=False) as conn:
            row = conn.execute(
                "SELECT c.revoked_at_ms, c.replaces, p.revoked_at_ms FROM certificates c"
                " LEFT JOIN certificates p ON p.serial = c.replaces WHERE c.serial = ?", (serial_hex(serial),),
            ).fetchone()
        if row is None or _revoked(row[0], now):
            return True
        cutoff = now + int(ROTATION_GRACE_S * 1000)
        if row[1] and row[2] is not None and (row[2] == 0 or row[2] > cutoff):
            try:
                _schedule_revocation(storage, row[1], cutoff, f"rotated to {serial_hex(serial)}")
            except CloudError as err:  # busy: the next call tries again; this one may proceed
                log.warning("could not schedule revocation of %s: %s", row[1], err)
        return False

    return refused


def _schedule_revocation(storage: Storage, serial: str, at_ms: int, reason: str) -> None:
    with storage.transaction("schedule revocation") as conn:
        conn.execute("UPDATE certificates SET revoked_at_ms = ?, revoke_reason = ? WHERE serial = ?"
                     " AND (revoked_at_ms = 0 OR revoked_at_ms > ?)", (at_ms, reason, serial, at_ms))


def revoke(storage: Storage, *, serial: str = "", device_id: str = "", reason: str = "revoked by operator") -> list[str]:
    """Revoke one certificate by hex serial, or every certificate of a device; the serials revoked.

    NotFoundError when nothing matches. Revoking is immediate: the next call with it is refused
    (also for a rotated certificate whose revocation was only scheduled).
    """
    if bool(serial) == bool(device_id):
        raise InvalidRequestError("give exactly one of a serial or a device id")
    now = now_ms()
    with storage.transaction("revoke certificate") as conn:
        if serial:
            key = serial.lower().removeprefix("0x")
            rows = conn.execute("SELECT serial FROM certificates WHERE serial = ? AND (revoked_at_ms = 0"
                                " OR revoked_at_ms > ?)", (key, now)).fetchall()
        else:
            rows = conn.execute("SELECT serial FROM certificates WHERE device_id = ? AND (revoked_at_ms = 0"
                                " OR revoked_at_ms > ?)", (device_id, now)).fetchall()
        if not rows:
            raise NotFoundError(f"no unrevoked certificate {'with serial ' + serial if serial else 'of device ' + device_id}")
        serials = [r[0] for r in rows]
        conn.executemany("UPDATE certificates SET revoked_at_ms = ?, revoke_reason = ? WHERE serial = ?",
                         [(now, reason, s) for s in serials])
    return serials


def list_certificates(storage: Storage, device_id: str = "") -> list[dict[str, Any]]:
    """Issued certificates (of one device, or all), oldest first, without their PEM."""
    with storage.transaction("list certificates", write=False) as conn:
        rows = conn.execute(
            "SELECT * FROM certificates WHERE (? = '' OR device_id = ?) ORDER BY issued_at_ms, serial",
            (device_id, device_id)).fetchall()
    return [{k: r[k] for k in r.keys() if k != "certificate_pem"} for r in rows]


def new_device_id() -> str:
    """A device id for a device that did not bring one."""
    return f"dev-{secrets.token_hex(5)}"

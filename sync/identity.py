"""The device's mTLS identity: a key pair made on the device, the certificate the cloud's CA signed
for it, and the CA certificate the device trusts.

    ident = enroll(identity_dir, "cloud.example.com:50052", claim_token, ca_pem=ca_file.read_bytes())
    ident = DeviceIdentity.load(identity_dir)
    channel = grpc.secure_channel(ident.sync_target, ident.channel_credentials(), options=ident.channel_options())
    if ident.needs_rotation():
        ident = ident.rotate()

Files in the identity directory (0700; private files 0600, written atomically):
`device.key` (EC P-256, never leaves the device), `device.pem` (our certificate), `ca.pem`,
`device.json` (ids, the cloud's mTLS address). A new key is first written as `device.key.pending`
and becomes `device.key` only after the cloud signed it, so a crash or a lost answer at any point
leaves either the old pair or a retry that reuses the pending key (`load` finishes a half-done swap).

Several processes read these files (the sync daemon, the app's payment and mirror channels, the admin
server) while one of them rotates. Every file is replaced by rename (temp + fsync + rename), and the
order pending key → certificate → key rename means that at every instant the certificate matches
`device.key` or `device.key.pending`: `load` pairs it with whichever matches and reads again when a
rename fell between its reads, so a reader never gets a key/cert mismatch. Writers (enroll, rotate,
finishing a cut swap) hold `device.lock` (flock), so two processes rotating at once cannot pair one
process's certificate with the other's key.

The data key of `sync.crypto` stays wrapped by its own `identity.key`, not by this key: this key is
replaced at every rotation (≤ 30 days), so wrapping with it would mean re-wrapping the data key each
time, and a failed rotation must never be able to crypto-erase the replica. On a TPM or secure
element both keys live in the chip, as two keys.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from api import pki
from api.v1 import registry_pb2, registry_pb2_grpc
from sync.errors import SyncError

#: Rotate when less than this is left of the certificate (a third of the 30-day validity): a device
#: that is offline for a week still comes back with a valid certificate to rotate with.
ROTATE_BEFORE_S = 10 * 24 * 3600
#: Deadline of an Enroll / RotateCertificate call.
ENROLL_DEADLINE_S = 20.0

KEY_FILE = "device.key"
PENDING_KEY_FILE = "device.key.pending"
CERT_FILE = "device.pem"
CA_FILE = "ca.pem"
META_FILE = "device.json"
LOCK_FILE = "device.lock"
#: How often `load` reads the files again when a writer's rename fell between its reads.
LOAD_ATTEMPTS = 3


class IdentityError(SyncError):
    """The device is not enrolled, its identity files are damaged, or the cloud refused to sign."""


@contextmanager
def _writer_lock(identity_dir: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold `device.lock` (exclusive flock) while changing the identity files; yields False when
    `wait` is False and another process holds it, or the lock file cannot be opened (read-only)."""
    fd = -1
    try:
        identity_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(identity_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        locked = True
    except OSError as err:  # BlockingIOError: held by another writer
        if wait:
            if fd >= 0:
                os.close(fd)
            raise IdentityError(f"cannot lock the identity files in {identity_dir}: {err}") from err
        locked = False
    try:
        yield locked
    finally:
        if fd >= 0:
            os.close(fd)  # closing the descriptor releases the flock


def _finish_swap(identity_dir: Path) -> None:
    """With the writer lock held: a pending key that the stored certificate is for becomes the key
    (a rotation or enrollment cut between writing the certificate and renaming the key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pending = identity_dir / PENDING_KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate((identity_dir / CERT_FILE).read_bytes())
        pkey = serialization.load_pem_private_key(pending.read_bytes(), password=None)
    except (OSError, ValueError):
        return  # nothing pending, or no certificate yet: nothing to finish
    if pki.same_key(cert, pkey):
        os.replace(pending, identity_dir / KEY_FILE)


def _pending_key(identity_dir: Path) -> Any:
    """The key waiting for a certificate: reused if a previous attempt left one, else a new one.
    Called with the writer lock held."""
    from cryptography.hazmat.primitives import serialization

    _finish_swap(identity_dir)  # a pending key that already has its certificate is not pending any more
    path = identity_dir / PENDING_KEY_FILE
    if path.exists():
        try:
            return serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError:
            path.unlink()  # a torn write of a key that was never sent anywhere
    key = pki.new_key()
    pki.write_private(path, pki.key_pem(key))
    return key


def build_csr(key: Any, common_name: str = "joyedge-device") -> str:
    """A PKCS#10 request signed by `key` (the cloud takes only the key from it; `api.pki`)."""
    return pki.build_csr(key, common_name)


def _check_answer(resp: registry_pb2.EnrollResponse, key: Any, ca_pem: bytes) -> Any:
    """The certificate from `resp`, after checking it is for our key and signed by our CA."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise IdentityError(f"the cloud answered with a certificate our CA did not sign: {err}") from err
    if not pki.same_key(cert, key):
        raise IdentityError("the cloud answered with a certificate for another key; refusing it")
    return cert


def _call(target: str, credentials: grpc.ChannelCredentials, server_name: str, fn: str, request: Any,
          channel: grpc.Channel | None = None) -> registry_pb2.EnrollResponse:
    opts = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    own = channel is None
    ch = grpc.secure_channel(target, credentials, options=opts) if channel is None else channel
    try:
        return getattr(registry_pb2_grpc.EnrollmentStub(ch), fn)(request, timeout=ENROLL_DEADLINE_S)
    except grpc.RpcError as err:
        code = err.code().name if hasattr(err, "code") else "UNKNOWN"
        detail = err.details() if hasattr(err, "details") else str(err)
        raise IdentityError(f"{fn} at {target} failed ({code}): {detail}") from err
    finally:
        if own:
            ch.close()


def _host(target: str) -> str:
    return target.rsplit(":", 1)[0]


def _store(identity_dir: Path, resp: registry_pb2.EnrollResponse, cert: Any, ca_pem: bytes,
           sync_target: str, server_name: str) -> None:
    """Persist a signed certificate; the pending key becomes the device key last (see module doc)."""
    from cryptography.hazmat.primitives import serialization

    pki.write_private(identity_dir / CA_FILE, ca_pem, 0o644)
    meta = {"device_id": resp.device_id, "site_id": resp.site_id, "store_id": resp.store_id,
            "profile": resp.profile, "sync_target": sync_target, "server_name": server_name}
    pki.write_private(identity_dir / META_FILE, json.dumps(meta, indent=2).encode(), 0o644)
    # Certificate first, then the key rename: in between the certificate matches the pending key,
    # which `load` then uses (see module doc).
    pki.write_private(identity_dir / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    os.replace(identity_dir / PENDING_KEY_FILE, identity_dir / KEY_FILE)
    dfd = os.open(identity_dir, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the key rename must survive power loss like the others
    finally:
        os.close(dfd)


def enroll(identity_dir: str | Path, target: str, claim_token: str, *, ca_pem: bytes, device_id: str = "",
           name: str = "", server_name: str = "") -> DeviceIdentity:
    """Enroll at the cloud's enrollment port `target` with a claim token; the new identity.

    `ca_pem` is the cloud CA the installer was given (`--ca-file`): the device verifies the cloud
    before it hands over the claim token. `server_name` overrides the TLS name checked against the
    cloud's certificate when `target` is an address the certificate does not name.
    """
    d = Path(identity_dir)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    except Exception as err:  # grpc raises plain exceptions for bad PEM
        raise IdentityError(f"the CA file is not a PEM certificate: {err}") from err
    with _writer_lock(d):
        key = _pending_key(d)
        request = registry_pb2.EnrollRequest(claim_token=claim_token,
                                             csr_pem=build_csr(key, device_id or "joyedge-device"),
                                             device_id=device_id, name=name)
        resp = _call(target, creds, server_name, "Enroll", request)
        cert = _check_answer(resp, key, ca_pem)
        sync_target = f"{_host(target)}:{resp.mtls_port}" if resp.mtls_port else target
        _store(d, resp, cert, ca_pem, sync_target, server_name)
    return DeviceIdentity.load(d)


def _read_pair(d: Path) -> tuple[Any, bytes, Any, bytes, bool]:
    """(certificate, its PEM, the matching key, its PEM, True when that key is still the pending one).

    Reads again when the pair does not match: a writer's rename may have fallen between two reads."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for _ in range(LOAD_ATTEMPTS):
        cert_pem = (d / CERT_FILE).read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key_pem = (d / KEY_FILE).read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        if pki.same_key(cert, key):
            return cert, cert_pem, key, key_pem, False
        try:
            # The certificate was stored and the key rename has not happened yet (or was cut by a crash).
            pending_pem = (d / PENDING_KEY_FILE).read_bytes()
            pending = serialization.load_pem_private_key(pending_pem, password=None)
        except (FileNotFoundError, ValueError):
            continue  # renamed meanwhile, or a pending key being written: read everything again
        if pki.same_key(cert, pending):
            return cert, cert_pem, pending, pending_pem, True
    raise IdentityError(f"{d / CERT_FILE} does not belong to {d / KEY_FILE}; enroll again")


@dataclass(frozen=True)
class DeviceIdentity:
    """An enrolled device's key, certificate and trust anchor (see module doc)."""

    identity_dir: Path
    device_id: str
    site_id: str
    store_id: str
    profile: str
    #: The cloud's mTLS address recorded at enrollment (host dialled + the port the cloud advertised).
    sync_target: str
    #: TLS name to check the cloud's certificate against when it differs from the dialled host ("" = the host).
    server_name: str
    serial: int
    not_after: datetime
    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes

    @classmethod
    def load(cls, identity_dir: str | Path) -> DeviceIdentity:
        """Read the identity; IdentityError when the device is not enrolled or the files are damaged.
        Safe while another process rotates: the key returned is always the certificate's (module doc)."""
        d = Path(identity_dir)
        try:
            cert, cert_pem, _key, key_pem, pending = _read_pair(d)
            if pending:
                # Mid-rotation in another process, or a swap cut by a crash: finish it unless a writer
                # is at it (it will), or this process may not write here (the pair in RAM is right).
                with _writer_lock(d, wait=False) as locked, suppress(OSError):
                    if locked:
                        _finish_swap(d)
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
            ca_pem = (d / CA_FILE).read_bytes()
        except FileNotFoundError as err:
            raise IdentityError(
                f"device is not enrolled ({err.filename} missing); run `joyedge enroll --cloud HOST:PORT "
                "--claim-token T --ca-file ca.pem`") from err
        except (OSError, ValueError, KeyError) as err:
            raise IdentityError(f"device identity in {d} is damaged: {err}") from err
        return cls(identity_dir=d, device_id=meta["device_id"], site_id=meta["site_id"], store_id=meta["store_id"],
                   profile=meta.get("profile", ""), sync_target=meta["sync_target"],
                   server_name=meta.get("server_name", ""), serial=cert.serial_number,
                   not_after=cert.not_valid_after_utc, key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """mTLS credentials: our key and certificate, and only our cloud's CA as trust anchor."""
        return grpc.ssl_channel_credentials(root_certificates=self.ca_pem, private_key=self.key_pem,
                                            certificate_chain=self.cert_pem)

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel options this identity needs (the TLS name override, when one was given)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []

    def expired(self, now: datetime | None = None) -> bool:
        """True once the certificate is past its end: the cloud refuses it, only re-enrollment helps."""
        return (now or datetime.now(UTC)) >= self.not_after

    def needs_rotation(self, now: datetime | None = None, margin: float = ROTATE_BEFORE_S) -> bool:
        """True when less than `margin` seconds of validity are left."""
        return (now or datetime.now(UTC)) >= self.not_after - timedelta(seconds=margin)

    def rotate(self, target: str | None = None, *, channel: grpc.Channel | None = None) -> DeviceIdentity:
        """Get a certificate for a new key over mTLS and store it; the new identity.

        Rotates the device's *current* certificate: when another process rotated since this object was
        loaded, the files on disk (not this object) are what is rotated, over a new channel to `target`
        or `sync_target` (`channel` is used only while this object is still current). The old
        certificate is revoked by the cloud `ROTATION_GRACE_S` (120 s) after the new one is first used,
        so every channel still presenting it must switch: device-side clients get theirs from
        `sync.channel.DeviceChannel`, which follows the files. The writer lock serialises rotations of
        several processes."""
        with _writer_lock(self.identity_dir):
            current = DeviceIdentity.load(self.identity_dir)
            if current.serial == self.serial:
                current = self  # this object is current (its target and TLS name as given)
            else:
                channel = None  # presents a certificate that is no longer ours
            if current.expired():
                raise IdentityError(f"certificate expired at {current.not_after:%Y-%m-%d %H:%M} UTC; it cannot "
                                    "be rotated — enroll the device again with a new claim token")
            key = _pending_key(current.identity_dir)
            request = registry_pb2.RotateCertificateRequest(csr_pem=build_csr(key, current.device_id))
            resp = _call(target or current.sync_target, current.channel_credentials(), current.server_name,
                         "RotateCertificate", request, channel)
            cert = _check_answer(resp, key, current.ca_pem)
            if (resp.device_id, resp.site_id, resp.store_id) != (current.device_id, current.site_id,
                                                                   current.store_id):
                raise IdentityError("the rotated certificate names another device; refusing it")
            _store(current.identity_dir, resp, cert, current.ca_pem, current.sync_target, current.server_name)
        return DeviceIdentity.load(self.identity_dir)

"""`joyprov` side of field service: technician login at the cloud, and mTLS calls to a device's
admin API (`api/v1/admin.proto`).

Credentials live in a directory (`--cert-dir`, default `$JOYPROV_HOME` or `~/.config/joyprov`):
`technician.key` (0600, made on this machine, never sent), `technician.pem`, `ca.pem`.

Which device answered: a device certificate names its identity in a URI, which gRPC cannot check
as a host name. So `connect` first opens one TLS connection with Python's `ssl` (chain verified
against the cloud CA, our technician certificate presented), reads the device's identity and TLS
name (`api/admin.py`) from its verified certificate, and then opens the gRPC channel checking that
exact name. The identity is what `reset` confirms against, so a reset never lands on another device.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from api import pki
from api.admin import DEFAULT_PORT, ROLE_DEVICE, TLS_NAME_SUFFIX, parse_identity_uri
from api.v1 import admin_pb2, admin_pb2_grpc
from provisioning.errors import BadInput, ProvisioningError, Refused, TargetIOError, VerifyFailed

#: Deadline of one admin call (a self-test of every model takes a few seconds on a Pi).
CALL_TIMEOUT_S = 60.0
#: Deadline of reaching the device (TLS probe).
CONNECT_TIMEOUT_S = 10.0
KEY_FILE, CERT_FILE, CA_FILE = "technician.key", "technician.pem", "ca.pem"


def default_cert_dir() -> Path:
    """`$JOYPROV_HOME`, else `~/.config/joyprov`."""
    env = os.environ.get("JOYPROV_HOME")
    return Path(env) if env else Path.home() / ".config" / "joyprov"


def _rpc_error(err: grpc.RpcError, what: str, target: str) -> ProvisioningError:
    """Our error (and exit code) for a failed call, with what to do next."""
    code = err.code() if hasattr(err, "code") else None
    detail = err.details() if hasattr(err, "details") else str(err)
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return Refused(f"{target} refused {what}: {detail}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return BadInput(f"{what} at {target}: {detail}")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
        return VerifyFailed(f"{what} at {target} could not be done: {detail}")
    return TargetIOError(f"{what} at {target} failed ({code.name if code else 'UNKNOWN'}): {detail}; "
                         "is the device up and on this LAN? (`joyprov discover`)")


# --- login ---------------------------------------------------------------------------------------

def login(cloud: str, token: str, ca_file: Path, cert_dir: Path, *, server_name: str = "") -> dict[str, Any]:
    """Exchange a one-time login token for a technician certificate; what was stored."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        ca_pem = ca_file.read_bytes()
        ca = x509.load_pem_x509_certificate(ca_pem)
    except (OSError, ValueError) as err:
        raise BadInput(f"--ca-file {ca_file}: not a readable PEM certificate ({err}); use the cloud's ca.pem") from err
    key = pki.new_key()
    request = admin_pb2.TechnicianLoginRequest(login_token=token, csr_pem=pki.build_csr(key, "joyprov technician"))
    opts = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    with grpc.secure_channel(cloud, grpc.ssl_channel_credentials(root_certificates=ca_pem), options=opts) as ch:
        try:
            resp = admin_pb2_grpc.TechnicianLoginStub(ch).Login(request, timeout=CONNECT_TIMEOUT_S * 2)
        except grpc.RpcError as err:
            raise _rpc_error(err, "login", cloud) from err
    try:
        cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise VerifyFailed(f"the cloud answered with a certificate its CA did not sign: {err}") from err
    if not pki.same_key(cert, key):
        raise VerifyFailed("the cloud answered with a certificate for another key; not stored")
    pki.write_private(cert_dir / KEY_FILE, pki.key_pem(key))
    pki.write_private(cert_dir / CERT_FILE, resp.certificate_pem.encode(), 0o644)
    pki.write_private(cert_dir / CA_FILE, ca_pem, 0o644)
    return {"name": resp.name, "site_id": resp.site_id, "serial": resp.serial, "not_after_ms": resp.not_after_ms,
            "cert_dir": str(cert_dir)}


# --- admin calls ---------------------------------------------------------------------------------

@dataclass
class Credentials:
    """A technician's key, certificate and the cloud CA, as read from the cert dir."""

    key_pem: bytes
    cert_pem: bytes
    ca_pem: bytes
    cert_dir: Path
    not_after: datetime

    @classmethod
    def load(cls, cert_dir: Path) -> Credentials:
        """Read and check (not expired) the technician credentials; BadInput says to log in."""
        from cryptography import x509

        try:
            key, cert, ca = ((cert_dir / f).read_bytes() for f in (KEY_FILE, CERT_FILE, CA_FILE))
            parsed = x509.load_pem_x509_certificate(cert)
        except (OSError, ValueError) as err:
            raise BadInput(f"no technician certificate in {cert_dir} ({err}); run `joyprov login --cloud HOST:PORT "
                           "--token T --ca-file ca.pem` (or pass --cert-dir)") from err
        if parsed.not_valid_after_utc <= datetime.now(UTC):
            raise BadInput(f"the technician certificate in {cert_dir} expired at "
                           f"{parsed.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; run `joyprov login` again")
        return cls(key, cert, ca, cert_dir, parsed.not_valid_after_utc)


def parse_target(host: str) -> tuple[str, int]:
    """HOST, HOST:PORT or [v6]:PORT → (host, port); the port defaults to the admin API's."""
    if host.startswith("["):
        h, _, rest = host[1:].partition("]")
        return h, int(rest.lstrip(":") or DEFAULT_PORT)
    if host.count(":") == 1:
        h, p = host.split(":")
        if not p.isdigit():
            raise BadInput(f"{host!r}: the port must be a number (HOST:PORT)")
        return h, int(p)
    return host, DEFAULT_PORT


def probe_identity(host: str, port: int, creds: Credentials) -> dict[str, str]:
    """The device identity (role, site_id, store_id, device_id) and TLS name from its verified certificate."""
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the name is checked by gRPC below, against the certificate's own
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=creds.ca_pem.decode())
    ctx.set_alpn_protocols(["h2"])
    ctx.load_cert_chain(creds.cert_dir / CERT_FILE, creds.cert_dir / KEY_FILE)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as raw, \
                ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as err:
        raise Refused(f"{host}:{port} is not a device of our cloud ({err.verify_message}); wrong address?") from err
    except (OSError, ssl.SSLError) as err:
        raise TargetIOError(f"cannot reach the admin API at {host}:{port} ({err}); is the device up, on this "
                            "LAN, and serving (`joyprov discover` shows its address and port)?") from err
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("urn:joyedge:")]
    names = [n for n in sans.get_values_for_type(x509.DNSName) if n.endswith(TLS_NAME_SUFFIX)]
    if len(uris) != 1 or not names:
        raise Refused(f"{host}:{port} presents a certificate without a device identity; it is not a JoyEdge device")
    ident = parse_identity_uri(uris[0])
    if ident["role"] != ROLE_DEVICE:
        raise Refused(f"{host}:{port} presents a {ident['role']} certificate, not a device's")
    return {**ident, "tls_name": names[0]}


class AdminClient:
    """One device's admin API over mTLS (see module doc). Use as a context manager."""

    def __init__(self, target: str, creds: Credentials) -> None:
        self.host, self.port = parse_target(target)
        self.target = f"{self.host}:{self.port}"
        self.device = probe_identity(self.host, self.port, creds)
        channel_creds = grpc.ssl_channel_credentials(root_certificates=creds.ca_pem, private_key=creds.key_pem,
                                                     certificate_chain=creds.cert_pem)
        addr = f"[{self.host}]:{self.port}" if ":" in self.host else self.target
        self.channel = grpc.secure_channel(addr, channel_creds,
                                           options=[("grpc.ssl_target_name_override", self.device["tls_name"])])
        self.stub = admin_pb2_grpc.DeviceAdminStub(self.channel)

    def call(self, method: str, request: Any, what: str) -> Any:
        """Call `method`; our errors with exit codes on failure."""
        try:
            return getattr(self.stub, method)(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            raise _rpc_error(err, what, f"{self.device['device_id']} ({self.target})") from err

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Who is calling: mTLS server credentials, the caller's certificate identity, and the checks on it.

The cloud listens on two ports of one gRPC server (see ARCHITECTURE.md, "Enrollment and mTLS"):

- the **mTLS port** requires a client certificate signed by our CA (the TLS handshake itself refuses
  a missing, self-signed, foreign or expired certificate);
- the **enrollment port** is server-only TLS: a device that has no certificate yet can reach only
  `Enrollment.Enroll` (and health) there.

`AuthInterceptor` runs before every handler of a secure server. It parses the verified peer
certificate, refuses a revoked one (UNAUTHENTICATED), lets a call without a certificate through only
to `Enroll`/health, checks the method against the caller's role (PERMISSION_DENIED), binds a device's
request to its certificate (`DEVICE_BINDINGS`: device/site/store/member/payment fields, PERMISSION_DENIED
before any handler runs), and makes the identity available to handlers, which may scope further:

    ident = require_device(context, site_id=request.site_id)   # None only on an insecure server

A certificate names its holder in one URI SAN: `urn:joyedge:device:<site>:<store>:<device>`,
`urn:joyedge:technician:<site>:<name>` or `urn:joyedge:operator:<name>`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from cloud_stub.errors import CloudError

log = logging.getLogger(__name__)

URN_PREFIX = "urn:joyedge:"
ROLE_DEVICE = "device"
ROLE_TECHNICIAN = "technician"
ROLE_OPERATOR = "operator"
ROLES = (ROLE_DEVICE, ROLE_TECHNICIAN, ROLE_OPERATOR)

_V1 = "/joyedge.api.v1."
_HEALTH = "/grpc.health.v1.Health/"
#: Methods a caller without a client certificate may use (only the enrollment port has such callers).
ANONYMOUS_METHODS = frozenset({f"{_V1}Enrollment/Enroll", f"{_HEALTH}Check", f"{_HEALTH}Watch",
                               f"{_V1}TechnicianLogin/Login"})  # issue 8: one-time login token + CSR
#: What each role may call, as full method names or service prefixes ending in "/". Operators may
#: call everything. A device reaches its own data through these; which request fields must name the
#: caller itself is `DEVICE_BINDINGS` (below), enforced by `AuthInterceptor` before any handler runs.
ROLE_METHODS: dict[str, tuple[str, ...]] = {
    ROLE_DEVICE: (
        f"{_V1}Sync/", _HEALTH,
        f"{_V1}Enrollment/RotateCertificate",
        f"{_V1}DeviceRegistry/Heartbeat", f"{_V1}DeviceRegistry/GetDevice",
        f"{_V1}Payment/",
        f"{_V1}Marketing/RedeemCoupon", f"{_V1}Marketing/ReportOfflineRedemptions",
        f"{_V1}Credit/GetCredit",
        f"{_V1}CRM/GetMember", f"{_V1}CRM/RecordConsent", f"{_V1}CRM/EnrollFace", f"{_V1}CRM/WithdrawConsent",
        f"{_V1}Fusion/FindCar",  # 人脸寻车 at the mirror; the handler scopes it to the device's site
        f"{_V1}MemberQr/GetKeys",  # the site's member-QR public keys; the handler answers for the caller's site
    ),
    ROLE_TECHNICIAN: (
        _HEALTH, f"{_V1}DeviceRegistry/GetDevice", f"{_V1}DeviceRegistry/ListDevices",
    ),
}


@dataclass(frozen=True)
class Binding:
    """Which request fields of a device-callable method name *who* acts; checked against the
    caller's certificate before the handler runs (`services/binding.py` does the lookups).

    device   must be the certificate's device id (filled from it when empty)
    site     must be the certificate's site (filled from it when empty)
    store    must name a store of the certificate's site (filled with the certificate's store when empty)
    member   must name a member whose home site is the certificate's site (empty: left to the handler)
    payment  must name a payment taken in a store of the certificate's site (unknown: the handler's NOT_FOUND)
    items    a repeated message field whose every element is checked against `item`
    note     why nothing (more) is bound here: the handler scopes the call by the certificate itself
    """

    device: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    store: tuple[str, ...] = ()
    member: tuple[str, ...] = ()
    payment: tuple[str, ...] = ()
    items: str = ""
    item: Binding | None = None
    note: str = ""


_DEV, _SITE, _STORE, _MEMBER = ("device_id",), ("site_id",), ("store_id",), ("member_id",)
#: Every method a DEVICE certificate may call, with the request fields bound to the certificate.
#: Fail closed: a device call to a method missing here is PERMISSION_DENIED even when ROLE_METHODS
#: lets the device reach the service (e.g. a new Payment method). Operators and technicians are not
#: bound (operators may do everything; technicians only reach what ROLE_METHODS grants them).
DEVICE_BINDINGS: dict[str, Binding] = {
    f"{_V1}Sync/Pull": Binding(device=_DEV, site=_SITE, store=_STORE),
    f"{_V1}Sync/Push": Binding(device=_DEV, site=_SITE, store=_STORE),
    f"{_V1}Sync/Snapshot": Binding(device=_DEV, site=_SITE, store=_STORE),
    f"{_V1}Enrollment/RotateCertificate": Binding(note="the new certificate names the calling certificate's holder"),
    f"{_V1}DeviceRegistry/Heartbeat": Binding(device=_DEV),
    f"{_V1}DeviceRegistry/GetDevice": Binding(device=_DEV),
    f"{_V1}Payment/Authorize": Binding(device=_DEV, store=_STORE, member=_MEMBER),
    f"{_V1}Payment/Capture": Binding(payment=("payment_id",)),
    f"{_V1}Payment/Refund": Binding(payment=("payment_id",)),
    f"{_V1}Payment/GetPayment": Binding(payment=("payment_id",)),
    f"{_V1}Marketing/RedeemCoupon": Binding(device=_DEV, store=_STORE, member=_MEMBER),
    f"{_V1}Marketing/ReportOfflineRedemptions": Binding(
        device=_DEV, items="redemptions", item=Binding(store=_STORE, member=_MEMBER)),
    f"{_V1}Credit/GetCredit": Binding(member=_MEMBER),
    f"{_V1}CRM/GetMember": Binding(member=_MEMBER),
    f"{_V1}CRM/RecordConsent": Binding(device=_DEV, member=_MEMBER),
    f"{_V1}CRM/EnrollFace": Binding(member=_MEMBER),  # the consent must be this member's (storage checks)
    f"{_V1}CRM/WithdrawConsent": Binding(member=_MEMBER),
    f"{_V1}Fusion/FindCar": Binding(note="the handler resolves `who` only among members and cars of the caller's site"),
    f"{_V1}MemberQr/GetKeys": Binding(site=_SITE),
}


class AuthError(CloudError):
    """A certificate or identity is malformed or cannot be used."""


class BindingDenied(AuthError):
    """The request names a device, site, store, member or payment the caller may not act for."""


@dataclass(frozen=True)
class PeerIdentity:
    """The holder of a verified client certificate."""

    role: str
    site_id: str
    store_id: str
    device_id: str
    name: str
    serial: int
    not_after: datetime

    @property
    def uri(self) -> str:
        """The SAN URI this identity was read from."""
        return identity_uri(self.role, site_id=self.site_id, store_id=self.store_id,
                            device_id=self.device_id, name=self.name)


def identity_uri(role: str, *, site_id: str = "", store_id: str = "", device_id: str = "", name: str = "") -> str:
    """The SAN URI naming a certificate holder of `role`."""
    if role == ROLE_DEVICE:
        parts = [site_id, store_id, device_id]
    elif role == ROLE_TECHNICIAN:
        parts = [site_id, name]
    elif role == ROLE_OPERATOR:
        parts = [name]
    else:
        raise AuthError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if not all(parts) or any(":" in p for p in parts):
        raise AuthError(f"a {role} identity needs non-empty ids without ':', got {parts}")
    return URN_PREFIX + ":".join([role, *parts])


def parse_identity_uri(uri: str) -> dict[str, str]:
    """role/site_id/store_id/device_id/name from a SAN URI; AuthError when it is not ours."""
    if not uri.startswith(URN_PREFIX):
        raise AuthError(f"not a JoyEdge identity URI: {uri!r}")
    role, *parts = uri[len(URN_PREFIX):].split(":")
    fields = {"role": role, "site_id": "", "store_id": "", "device_id": "", "name": ""}
    shape = {ROLE_DEVICE: ("site_id", "store_id", "device_id"), ROLE_TECHNICIAN: ("site_id", "name"),
             ROLE_OPERATOR: ("name",)}.get(role)
    if shape is None or len(parts) != len(shape) or not all(parts):
        raise AuthError(f"malformed JoyEdge identity URI: {uri!r}")
    fields.update(zip(shape, parts, strict=True))
    return fields


def identity_from_pem(pem: bytes) -> PeerIdentity:
    """The identity bound into a certificate (its one `urn:joyedge:` URI SAN); AuthError otherwise."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound) as err:
        raise AuthError(f"certificate has no readable subject alternative names: {err}") from err
    uris = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(URN_PREFIX)]
    if len(uris) != 1:
        raise AuthError(f"certificate must name exactly one JoyEdge identity, found {len(uris)}")
    return PeerIdentity(serial=cert.serial_number, not_after=cert.not_valid_after_utc, **parse_identity_uri(uris[0]))


# --- server side ----------------------------------------------------------------------------------

def server_credentials(ca_dir: str | Path) -> grpc.ServerCredentials:
    """Credentials for the mTLS port: our server certificate, client certificates required and
    verified against our CA (`ca init` wrote both into `ca_dir`)."""
    key, cert, ca = _server_files(ca_dir)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def enrollment_credentials(ca_dir: str | Path) -> grpc.ServerCredentials:
    """Credentials for the enrollment port: server-only TLS (the device has no certificate yet, but
    it must know it talks to our cloud before it hands over its claim token)."""
    key, cert, _ca = _server_files(ca_dir)
    return grpc.ssl_server_credentials([(key, cert)], require_client_auth=False)


def _server_files(ca_dir: str | Path) -> tuple[bytes, bytes, bytes]:
    d = Path(ca_dir)
    paths = (d / "server.key", d / "server.pem", d / "ca.pem")
    try:
        return tuple(p.read_bytes() for p in paths)  # type: ignore[return-value]
    except OSError as err:
        raise AuthError(
            f"cannot read {err.filename}: {err.strerror} (run `joyedge-cloud ca init --dir {d}` first)"
        ) from err


def _is_tls(context: grpc.ServicerContext) -> bool:
    kinds = context.auth_context().get("transport_security_type", [])
    return any(k in (b"ssl", b"tls") for k in kinds)


def peer_identity(context: grpc.ServicerContext) -> PeerIdentity | None:
    """The identity of the caller's verified client certificate, or None when it presented none.

    gRPC puts the certificate in the auth context only after verifying it against our CA, so this
    is never a self-signed or foreign one. A certificate of ours without a JoyEdge URI is refused.
    """
    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        return None
    try:
        return identity_from_pem(pems[0])
    except AuthError as err:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, f"client certificate not usable: {err}")
        raise  # pragma: no cover - abort raises


# The identity the interceptor verified for the call running on this thread/context.
_CHECKED: contextvars.ContextVar[PeerIdentity | None] = contextvars.ContextVar("joyedge_peer")
_UNCHECKED = object()


def require_device(context: grpc.ServicerContext, *, site_id: str | None = None,
                   device_id: str | None = None) -> PeerIdentity | None:
    """The calling device's identity; aborts the call when it may not act.

    UNAUTHENTICATED: TLS call without a verified, non-revoked device certificate.
    PERMISSION_DENIED: a certificate of another role, of another site than `site_id`, or of another
    device than `device_id` ("pushes only as itself").
    Returns None only when the server runs without TLS (loopback dev mode, `--insecure`).
    """
    if not _is_tls(context):
        return None
    ident = _CHECKED.get(_UNCHECKED)
    if ident is _UNCHECKED:
        # Fail closed: a TLS call that did not pass the AuthInterceptor was never checked for revocation.
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "caller identity was not verified (no auth interceptor)")
    if ident is None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "a device certificate is required; enroll first")
    assert isinstance(ident, PeerIdentity)
    if ident.role != ROLE_DEVICE:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"a device certificate is required, not {ident.role}")
    if site_id is not None and site_id != ident.site_id:
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"device {ident.device_id} belongs to site {ident.site_id!r}, not {site_id!r}")
    if device_id is not None and device_id != ident.device_id:
        context.abort(grpc.StatusCode.PERMISSION_DENIED,
                      f"device {ident.device_id} may act only as itself, not as {device_id!r}")
    return ident


def _allowed(role: str, method: str) -> bool:
    if role == ROLE_OPERATOR:
        return True
    return any(method == m or (m.endswith("/") and method.startswith(m)) for m in ROLE_METHODS.get(role, ()))


class AuthInterceptor(grpc.ServerInterceptor):
    """Gate of a secure server: identity, revocation and role, before any handler runs.

    `is_revoked(serial) -> bool` is asked for every call with a certificate (an indexed lookup);
    it is the revocation list in the cloud's storage (`ca.certificate_gate`).

    `bind(method, identity, request)` checks a device's request against `DEVICE_BINDINGS` (storage
    lookups: `services.binding.binder`); it raises BindingDenied (→ PERMISSION_DENIED) and may fill
    empty id fields from the certificate. Without it, device calls to bound methods are refused.
    """

    def __init__(self, is_revoked: Callable[[int], bool],
                 bind: Callable[[str, PeerIdentity, Any], None] | None = None) -> None:
        self._is_revoked = is_revoked
        self._bind = bind

    def _check(self, method: str, context: grpc.ServicerContext) -> PeerIdentity | None:
        ident = peer_identity(context)
        if ident is None:
            if method not in ANONYMOUS_METHODS:
                context.abort(grpc.StatusCode.UNAUTHENTICATED,
                              f"{method} needs a client certificate (mTLS port); this caller presented none")
            return None
        if self._is_revoked(ident.serial):
            log.warning("refused revoked certificate %x of %s", ident.serial, ident.uri)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"certificate {ident.serial:x} has been revoked")
        if not _allowed(ident.role, method) or (ident.role == ROLE_DEVICE and method not in DEVICE_BINDINGS):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"a {ident.role} certificate may not call {method}")
        return ident

    def _check_request(self, method: str, ident: PeerIdentity | None, request: Any,
                       context: grpc.ServicerContext) -> None:
        """Bind a device's request to its certificate (DEVICE_BINDINGS); other callers pass.

        `request` is None for a client-streaming method: nothing can be checked before the handler,
        so only a method whose binding is a handler `note` may be called that way.
        """
        if ident is None or ident.role != ROLE_DEVICE:
            return
        binding = DEVICE_BINDINGS[method]
        if binding == Binding(note=binding.note):
            return  # nothing in the request names the caller; the handler scopes by the certificate
        if self._bind is None or request is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method}: the caller's request cannot be bound here")
        try:
            self._bind(method, ident, request)  # type: ignore[misc]
        except BindingDenied as err:
            log.warning("refused %s by %s: %s", method, ident.uri, err)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(err))
        except CloudError as err:  # the lookups failed (busy or broken storage): nothing ran yet
            log.warning("could not check %s by %s: %s", method, ident.uri, err)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot check the caller's rights now ({err}); retry")

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method

        def unary(behavior: Callable[..., Any], streamed: bool = False) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                ident = self._check(method, context)
                self._check_request(method, ident, None if streamed else request, context)
                token = _CHECKED.set(ident)
                try:
                    return behavior(request, context)
                finally:
                    _CHECKED.reset(token)
            return run

        def streaming(behavior: Callable[..., Any], streamed: bool = False) -> Callable[..., Any]:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                ident = self._check(method, context)
                self._check_request(method, ident, None if streamed else request, context)
                # The handler's generator body runs while we iterate it: keep the identity set.
                token = _CHECKED.set(ident)
                try:
                    yield from behavior(request, context)
                finally:
                    _CHECKED.reset(token)
            return run

        if handler.unary_unary:
            return handler._replace(unary_unary=unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=unary(handler.stream_unary, streamed=True))
        if handler.unary_stream:
            return handler._replace(unary_stream=streaming(handler.unary_stream))
        return handler._replace(stream_stream=streaming(handler.stream_stream, streamed=True))


def now_utc() -> datetime:
    """Aware UTC now (certificate times are compared in UTC)."""
    return datetime.now(UTC)

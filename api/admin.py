"""Device admin contract shared by the device (`device/admin/`), `joyprov` and the cloud's CA.

Pure standard library. The admin API is gRPC over mTLS (`api/v1/admin.proto`): the device presents
its own enrollment certificate as the server certificate, the technician a certificate of the same
CA whose SAN URI is `urn:joyedge:technician:<site>:<name>`.

A certificate's identity URI cannot be checked as a TLS host name by gRPC, so device certificates
also carry one DNS name, `device_tls_name(site, device)`, under the reserved `.invalid` top-level
domain (RFC 2606): it is never resolved, only compared. `joyprov` learns it from the device's
verified certificate and asks gRPC to check exactly that name.
"""

from __future__ import annotations

import hashlib
import re

#: Port of the admin API when nothing else is configured (advertised in the mDNS SRV record).
DEFAULT_PORT = 50443
URN_PREFIX = "urn:joyedge:"
ROLE_TECHNICIAN = "technician"
ROLE_DEVICE = "device"
TLS_NAME_SUFFIX = ".joyedge.invalid"
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

#: Audit action names (AdminActionEvent.action), one per admin RPC.
ACTIONS = {
    "Status": "status", "SelfTest": "selftest", "Logs": "logs", "GetConfig": "config_get",
    "SetConfig": "config_set", "Restart": "restart", "FactoryReset": "factory_reset",
    "RotateCertificate": "rotate_certificate",
}


def _label(value: str) -> str:
    low = value.lower()
    if _LABEL.fullmatch(low):
        return low
    # An id with characters DNS does not allow (. _ : @ +) becomes a stable hash label.
    return "x" + hashlib.sha256(value.encode()).hexdigest()[:20]


def device_tls_name(site_id: str, device_id: str) -> str:
    """The DNS SAN of a device certificate: `<device>.<site>.joyedge.invalid` (labels made DNS-safe)."""
    return f"{_label(device_id)}.{_label(site_id)}{TLS_NAME_SUFFIX}"


def parse_identity_uri(uri: str) -> dict[str, str]:
    """role, site_id, store_id, device_id, name of a `urn:joyedge:` URI; ValueError when not ours."""
    if not uri.startswith(URN_PREFIX):
        raise ValueError(f"not a JoyEdge identity URI: {uri!r}")
    role, *parts = uri[len(URN_PREFIX):].split(":")
    shape = {ROLE_DEVICE: ("site_id", "store_id", "device_id"), ROLE_TECHNICIAN: ("site_id", "name"),
             "operator": ("name",)}.get(role)
    if shape is None or len(parts) != len(shape) or not all(parts):
        raise ValueError(f"malformed JoyEdge identity URI: {uri!r}")
    out = {"role": role, "site_id": "", "store_id": "", "device_id": "", "name": ""}
    out.update(zip(shape, parts, strict=True))
    return out

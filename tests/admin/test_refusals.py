"""Acceptance: the device admin API refuses no certificate, a device certificate (wrong role) and an
expired technician certificate — each next to the same call made with a valid technician
certificate, so the refusal is the certificate's doing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.admin import device_tls_name
from api.v1 import admin_pb2, admin_pb2_grpc
from cloud_stub import ca, technicians
from sync.identity import build_csr
from tests.admin.conftest import DEVICE_ID, LOOPBACK, RUN, SITE, enroll_device, joyprov


def _status(admin, *, root: bytes, key: bytes | None = None, cert: bytes | None = None) -> admin_pb2.StatusResponse:
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=cert)
    with grpc.secure_channel(f"{LOOPBACK}:{admin.port}", creds,
                             options=[("grpc.ssl_target_name_override", device_tls_name(SITE, DEVICE_ID))]) as ch:
        return admin_pb2_grpc.DeviceAdminStub(ch).Status(admin_pb2.StatusRequest(), timeout=20)


def _tech_files(tech_dir: Path) -> dict[str, bytes]:
    return {"key": (tech_dir / "technician.key").read_bytes(), "cert": (tech_dir / "technician.pem").read_bytes()}


def _technician(ca_dir: Path, *, site: str = SITE, hours: float = 1, not_before: datetime | None = None):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = technicians.sign_technician(ca.CertificateAuthority(ca_dir), build_csr(key), site_id=site, name="old",
                                       hours=hours, not_before=not_before)
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()), cert.public_bytes(serialization.Encoding.PEM))


def test_a_caller_without_a_certificate_is_refused(admin, device, tech_dir) -> None:
    root = device.identity.ca_pem
    assert _status(admin, root=root, **_tech_files(tech_dir)).device_id == DEVICE_ID  # the valid control
    with pytest.raises(grpc.RpcError) as err:
        _status(admin, root=root)  # WHEN the caller trusts the CA but presents no certificate
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake itself refuses it


def test_a_device_certificate_is_permission_denied(tmp_path, admin, device, cloud, storage, ca_dir) -> None:
    other = enroll_device(tmp_path, cloud, storage, ca_dir, f"pos-adm-{RUN}", tmp_path / "other-identity")
    with pytest.raises(grpc.RpcError) as err:  # a certificate of our CA, of this site, but a device's
        _status(admin, root=device.identity.ca_pem, key=other.key_pem, cert=other.cert_pem)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "device certificate may not use the admin API" in err.value.details()
    # a technician of another mall is refused the same way
    key, cert = _technician(ca_dir, site=f"site-other-{RUN}")
    with pytest.raises(grpc.RpcError) as err:
        _status(admin, root=device.identity.ca_pem, key=key, cert=cert)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "may not service" in err.value.details()


def test_an_expired_technician_certificate_is_refused(tmp_path, admin, device, ca_dir) -> None:
    key, cert = _technician(ca_dir, hours=1, not_before=datetime.now(UTC) - timedelta(hours=3))
    fresh_key, fresh_cert = _technician(ca_dir, hours=1)
    assert _status(admin, root=device.identity.ca_pem, key=fresh_key, cert=fresh_cert).site_id == SITE
    with pytest.raises(grpc.RpcError) as err:
        _status(admin, root=device.identity.ca_pem, key=key, cert=cert)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # handshake: certificate expired
    # joyprov says what to do before it even dials
    expired = tmp_path / "expired"
    expired.mkdir()
    (expired / "technician.key").write_bytes(key)
    (expired / "technician.pem").write_bytes(cert)
    (expired / "ca.pem").write_bytes(device.identity.ca_pem)
    done = joyprov("status", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(expired))
    assert done.returncode == 3 and "expired" in done.stderr and "joyprov login" in done.stderr


def test_a_login_token_works_once(tmp_path, cloud, storage, ca_dir) -> None:
    token = technicians.create_login_token(storage, site_id=SITE, name="zhang", hours=1)["token"]
    args = ("login", "--cloud", f"{LOOPBACK}:{cloud.enroll_port}", "--token", token, "--ca-file",
            str(ca_dir / "ca.pem"))
    assert joyprov(*args, "--cert-dir", str(tmp_path / "a")).returncode == 0
    again = joyprov(*args, "--cert-dir", str(tmp_path / "b"))
    assert again.returncode == 1 and "already been used" in again.stderr
    assert not (tmp_path / "b" / "technician.key").exists()

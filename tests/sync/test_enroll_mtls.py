"""Enrollment and mTLS end to end: a real CA in tmp_path, the real cloud serving mTLS + the enrollment
port on loopback, devices enrolling with claim tokens and pulling over mTLS, and each way a caller
must be refused (no certificate, self-signed, another site, expired, revoked)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.v1 import registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc
from cloud_stub import ca, registry
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from sync.identity import PENDING_KEY_FILE, DeviceIdentity, IdentityError, build_csr, enroll

CALL_TIMEOUT_S = 5.0


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return ca.init_ca(tmp_path / "ca").dir


@pytest.fixture
def storage(tmp_path: Path) -> SqliteStorage:
    s = SqliteStorage(tmp_path / "cloud.db")
    for site in ("site-a", "site-b"):
        s.upsert_site(site, site)
        s.upsert_store(f"{site}-s1", site, "store 1")
        s.upsert_member(member_id=f"{site}-m1", site_id=site, name="王建")
    return s


@pytest.fixture
def cloud(tmp_path: Path, storage: SqliteStorage, ca_dir: Path) -> Iterator[CloudServer]:
    with start_server(tmp_path / "cloud.db", host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as srv:
        yield srv


def _token(storage: SqliteStorage, site: str = "site-a") -> str:
    return registry.create_claim_token(storage, site_id=site, store_id=f"{site}-s1", profile="mirror")["token"]


def _enroll(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path, name: str,
            site: str = "site-a") -> DeviceIdentity:
    return enroll(tmp_path / name / "identity", f"127.0.0.1:{cloud.enroll_port}", _token(storage, site),
                  ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id=name)


def _pull(target: str, creds: grpc.ChannelCredentials, site: str = "site-a",
          device_id: str = "") -> sync_pb2.PullResponse:
    with grpc.secure_channel(target, creds) as ch:
        return sync_pb2_grpc.SyncStub(ch).Pull(
            sync_pb2.PullRequest(device_id=device_id, site_id=site, store_id=f"{site}-s1",
                                 cursors=[sync_pb2.Cursor(stream=sync_pb2.STREAM_MEMBERS)]),
            timeout=CALL_TIMEOUT_S)


def _members(resp: sync_pb2.PullResponse) -> list[str]:
    return [c.member.member_id for b in resp.batches for c in b.changes]


def _refused(target: str, creds: grpc.ChannelCredentials, **kw: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _pull(target, creds, **kw)
    return info.value


def _key_and_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, build_csr(key)


def _creds(ca_dir: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(ca_dir / "ca.pem").read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM))


def test_enroll_then_pull_over_mtls(tmp_path, cloud, storage, ca_dir) -> None:
    ident = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-1")
    assert (ident.device_id, ident.site_id, ident.store_id) == ("mirror-1", "site-a", "site-a-s1")
    assert ident.sync_target == cloud.address  # the cloud advertised its mTLS port
    key_file = ident.identity_dir / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (ident.identity_dir / PENDING_KEY_FILE).exists()
    assert timedelta(days=29) < ident.not_after - datetime.now(UTC) <= timedelta(days=30)
    again = DeviceIdentity.load(ident.identity_dir)
    assert again.serial == ident.serial and not again.needs_rotation()

    resp = _pull(again.sync_target, again.channel_credentials(), device_id="mirror-1")
    assert _members(resp) == ["site-a-m1"]  # only its own site's data
    rows = ca.list_certificates(storage, "mirror-1")
    assert [r["serial"] for r in rows] == [f"{ident.serial:x}"]
    assert registry.get_device(storage, "mirror-1")["site_id"] == "site-a"


def test_claim_token_is_single_use(tmp_path, cloud, storage, ca_dir) -> None:
    """GIVEN a token used by one device WHEN another key presents it THEN it is refused; the same
    device retrying with its pending key (a lost answer) gets the same certificate back."""
    token = _token(storage)
    target = f"127.0.0.1:{cloud.enroll_port}"
    ca_pem = (ca_dir / "ca.pem").read_bytes()
    first = enroll(tmp_path / "d1", target, token, ca_pem=ca_pem)
    with pytest.raises(IdentityError, match="FAILED_PRECONDITION.*already been used"):
        enroll(tmp_path / "d2", target, token, ca_pem=ca_pem)
    assert not (tmp_path / "d2" / "device.pem").exists()

    # The device lost the answer: its key is still pending, so it retries with the same key.
    key_file = tmp_path / "d1" / "device.key"
    key_file.rename(tmp_path / "d1" / PENDING_KEY_FILE)
    (tmp_path / "d1" / "device.pem").unlink()
    retried = enroll(tmp_path / "d1", target, token, ca_pem=ca_pem)
    assert retried.serial == first.serial and retried.device_id == first.device_id
    assert len(ca.list_certificates(storage)) == 1


def test_refuses_no_client_certificate(cloud, ca_dir) -> None:
    server_only = grpc.ssl_channel_credentials(root_certificates=(ca_dir / "ca.pem").read_bytes())
    # The mTLS port refuses the handshake itself.
    assert _refused(cloud.address, server_only).code() == grpc.StatusCode.UNAVAILABLE
    # The enrollment port accepts the TLS connection but serves nothing but Enroll to it.
    err = _refused(f"127.0.0.1:{cloud.enroll_port}", server_only)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "client certificate" in err.details()
    with grpc.secure_channel(f"127.0.0.1:{cloud.enroll_port}", server_only) as ch:
        with pytest.raises(grpc.RpcError) as info:
            registry_pb2_grpc.DeviceRegistryStub(ch).CreateClaimToken(
                registry_pb2.CreateClaimTokenRequest(site_id="site-a", store_id="site-a-s1", profile="mirror"),
                timeout=CALL_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_refuses_self_signed_certificate(tmp_path, cloud, storage, ca_dir) -> None:
    """A self-made certificate naming a real enrolled device (same site, same id) is still refused."""
    real = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-1")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mirror-1")])
    now = datetime.now(UTC)
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(real.serial).not_valid_before(now - timedelta(hours=1))
              .not_valid_after(now + timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.UniformResourceIdentifier("urn:joyedge:device:site-a:site-a-s1:mirror-1")]), critical=False)
              .sign(key, hashes.SHA256()))
    assert _refused(cloud.address, _creds(ca_dir, key, forged)).code() == grpc.StatusCode.UNAVAILABLE
    assert _members(_pull(cloud.address, real.channel_credentials())) == ["site-a-m1"]  # the cloud is up


def test_refuses_another_sites_device(tmp_path, cloud, storage, ca_dir) -> None:
    other = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-b", site="site-b")
    err = _refused(cloud.address, other.channel_credentials(), site="site-a", device_id="mirror-b")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "site-b" in err.details()
    assert _members(_pull(cloud.address, other.channel_credentials(), site="site-b",
                          device_id="mirror-b")) == ["site-b-m1"]


def test_refuses_expired_certificate(tmp_path, cloud, storage, ca_dir) -> None:
    """A certificate of our CA, on record and never revoked, but past its end."""
    key, csr = _key_and_csr()
    cert = ca.CertificateAuthority(ca_dir).sign_csr(
        csr, site_id="site-a", store_id="site-a-s1", device_id="mirror-old",
        not_before=datetime.now(UTC) - timedelta(days=40))
    assert cert.not_valid_after_utc < datetime.now(UTC)
    with storage.transaction("record") as conn:
        ca.record_certificate(conn, cert)
    assert _refused(cloud.address, _creds(ca_dir, key, cert)).code() == grpc.StatusCode.UNAVAILABLE
    # The same CA's certificate for the same device, still valid, is accepted: expiry is the reason.
    fresh = ca.CertificateAuthority(ca_dir).sign_csr(csr, site_id="site-a", store_id="site-a-s1",
                                                     device_id="mirror-old")
    with storage.transaction("record") as conn:
        ca.record_certificate(conn, fresh)
    assert _members(_pull(cloud.address, _creds(ca_dir, key, fresh))) == ["site-a-m1"]


def test_refuses_revoked_certificate(tmp_path, cloud, storage, ca_dir) -> None:
    ident = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-1")
    creds = ident.channel_credentials()
    with grpc.secure_channel(cloud.address, creds) as ch:
        stub = sync_pb2_grpc.SyncStub(ch)
        request = sync_pb2.PullRequest(site_id="site-a", cursors=[sync_pb2.Cursor(stream=sync_pb2.STREAM_MEMBERS)])
        assert stub.Pull(request, timeout=CALL_TIMEOUT_S).batches
        assert ca.revoke(storage, device_id="mirror-1") == [f"{ident.serial:x}"]
        # Refused at once, even on the connection that was already open.
        with pytest.raises(grpc.RpcError) as info:
            stub.Pull(request, timeout=CALL_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in info.value.details()
    with pytest.raises(IdentityError, match="UNAUTHENTICATED"):
        ident.rotate()  # a revoked device cannot rotate its way back in


def test_certificate_rotates_before_expiry(tmp_path, cloud, storage, ca_dir) -> None:
    ident = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-1")
    assert not ident.needs_rotation()
    assert ident.needs_rotation(now=ident.not_after - timedelta(days=5))
    old_key = ident.key_pem

    new = ident.rotate()
    assert (new.device_id, new.site_id, new.store_id) == (ident.device_id, ident.site_id, ident.store_id)
    assert new.serial != ident.serial and new.key_pem != old_key and new.not_after >= ident.not_after
    assert DeviceIdentity.load(ident.identity_dir).serial == new.serial
    assert _members(_pull(cloud.address, new.channel_credentials())) == ["site-a-m1"]
    rows = {r["serial"]: r for r in ca.list_certificates(storage, "mirror-1")}
    assert rows[f"{new.serial:x}"]["replaces"] == f"{ident.serial:x}"

    # Rotation is for the device itself over mTLS: nothing without a client certificate.
    server_only = grpc.ssl_channel_credentials(root_certificates=(ca_dir / "ca.pem").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{cloud.enroll_port}", server_only) as ch:
        with pytest.raises(grpc.RpcError) as info:
            registry_pb2_grpc.EnrollmentStub(ch).RotateCertificate(
                registry_pb2.RotateCertificateRequest(csr_pem=_key_and_csr()[1]), timeout=CALL_TIMEOUT_S)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_load_finishes_a_rotation_cut_between_certificate_and_key(tmp_path, cloud, storage, ca_dir) -> None:
    """GIVEN power lost after the new certificate was written but before the key swap THEN load() pairs
    the certificate with the pending key instead of failing or using the old key."""
    ident = _enroll(tmp_path, cloud, storage, ca_dir, "mirror-1")
    d = ident.identity_dir
    key = ec.generate_private_key(ec.SECP256R1())
    (d / PENDING_KEY_FILE).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert = ca.CertificateAuthority(ca_dir).sign_csr(build_csr(key), site_id="site-a", store_id="site-a-s1",
                                                    device_id="mirror-1")
    (d / "device.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    loaded = DeviceIdentity.load(d)
    assert loaded.serial == cert.serial_number and not (d / PENDING_KEY_FILE).exists()


def test_not_enrolled_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(IdentityError, match="not enrolled.*joyedge enroll"):
        DeviceIdentity.load(tmp_path / "nothing")


def test_joyedge_enroll_cli(tmp_path, cloud, storage, ca_dir, capsys) -> None:
    from device.cli import main

    cfg = tmp_path / "dev.toml"
    cfg.write_text(f'profile = "mirror"\n[device]\nid = "mirror-cli"\nsite_id = "site-a"\nstore_id = "site-a-s1"\n'
                   f'data_dir = "{tmp_path / "dev"}"\n[camera]\nuri = "replay:unused"\n')
    base = ["enroll", "--config", str(cfg), "--cloud", f"127.0.0.1:{cloud.enroll_port}"]
    assert main([*base, "--claim-token", "nope", "--ca-file", str(tmp_path / "missing.pem")]) == 2
    assert "--ca-file" in capsys.readouterr().err
    assert main([*base, "--claim-token", "nope", "--ca-file", str(ca_dir / "ca.pem")]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err and not (tmp_path / "dev" / "identity" / "device.pem").exists()
    assert main([*base, "--claim-token", _token(storage), "--ca-file", str(ca_dir / "ca.pem")]) == 0
    out = capsys.readouterr().out
    assert "device mirror-cli (site site-a, store site-a-s1) enrolled" in out and cloud.address in out
    assert DeviceIdentity.load(tmp_path / "dev" / "identity").device_id == "mirror-cli"

"""The cloud's CA: `ca init` files and names, CSR signing (identity from the cloud, never the CSR),
the revocation list, roles at the mTLS gate, and the `ca`/`serve` CLI."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.v1 import registry_pb2, registry_pb2_grpc, sync_pb2, sync_pb2_grpc
from cloud_stub import ca
from cloud_stub.auth import identity_from_pem
from cloud_stub.cli import main
from cloud_stub.errors import InvalidRequestError, NotFoundError
from cloud_stub.server import start_server
from cloud_stub.storage import SqliteStorage


def _csr(key=None, san: str | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(san)]), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_init_writes_private_keys_and_names_the_hosts(tmp_path: Path) -> None:
    paths = ca.init_ca(tmp_path / "ca", ("cloud.example.com", "10.0.0.5"))
    for key in (paths.ca_key, paths.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    server = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "cloud.example.com"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {str(a) for a in sans.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1", "10.0.0.5"}
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()))
    with pytest.raises(ca.CaError, match="already exists"):
        ca.init_ca(tmp_path / "ca")


def test_identity_comes_from_the_cloud_not_from_the_csr(tmp_path: Path) -> None:
    authority = ca.CertificateAuthority(ca.init_ca(tmp_path / "ca").dir)
    csr = _csr(san="urn:joyedge:operator:mallory")  # asks for operator rights; gets a device cert
    cert = authority.sign_csr(csr, site_id="site-a", store_id="s1", device_id="m1")
    ident = identity_from_pem(cert.public_bytes(serialization.Encoding.PEM))
    assert (ident.role, ident.site_id, ident.store_id, ident.device_id) == ("device", "site-a", "s1", "m1")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    # serverAuth too: the device serves its admin API with this certificate (issue 8, api/admin.py)
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == timedelta(seconds=ca.DEVICE_CERT_VALIDITY_S)


@pytest.mark.parametrize("csr, match", [
    ("", "PEM CSR"),
    ("-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n-----END CERTIFICATE REQUEST-----\n", "not a PEM"),
    ("x" * 10_000, "at most"),
])
def test_bad_csrs_are_refused(tmp_path: Path, csr: str, match: str) -> None:
    authority = ca.CertificateAuthority(ca.init_ca(tmp_path / "ca").dir)
    with pytest.raises(InvalidRequestError, match=match):
        authority.sign_csr(csr, site_id="a", store_id="b", device_id="c")


def test_weak_keys_and_bad_ids_are_refused(tmp_path: Path) -> None:
    authority = ca.CertificateAuthority(ca.init_ca(tmp_path / "ca").dir)
    with pytest.raises(InvalidRequestError, match="2048"):
        authority.sign_csr(_csr(rsa.generate_private_key(65537, 1024)), site_id="a", store_id="b", device_id="c")
    with pytest.raises(InvalidRequestError, match="without ':'"):
        authority.sign_csr(_csr(), site_id="a:x", store_id="b", device_id="c")


def test_revocation_list_and_fail_closed(tmp_path: Path) -> None:
    storage = SqliteStorage(tmp_path / "cloud.db")
    authority = ca.CertificateAuthority(ca.init_ca(tmp_path / "ca").dir)
    certs = [authority.sign_csr(_csr(), site_id="a", store_id="b", device_id=d) for d in ("d1", "d1", "d2")]
    with storage.transaction("t") as conn:
        for c in certs:
            ca.record_certificate(conn, c)
    assert not any(ca.is_revoked(storage, c.serial_number) for c in certs)
    assert ca.is_revoked(storage, 12345)  # never issued by this cloud: refused
    assert sorted(ca.revoke(storage, device_id="d1")) == sorted(f"{c.serial_number:x}" for c in certs[:2])
    assert [ca.is_revoked(storage, c.serial_number) for c in certs] == [True, True, False]
    assert ca.revoke(storage, serial=f"0x{certs[2].serial_number:X}") == [f"{certs[2].serial_number:x}"]
    with pytest.raises(NotFoundError):
        ca.revoke(storage, device_id="d1")  # nothing left to revoke
    with pytest.raises(InvalidRequestError):
        ca.revoke(storage)


def _creds(ca_dir: Path, authority: ca.CertificateAuthority, storage: SqliteStorage, **ident) -> grpc.ChannelCredentials:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = authority.sign_csr(_csr(key), **ident)
    with storage.transaction("t") as conn:
        ca.record_certificate(conn, cert)
    return grpc.ssl_channel_credentials(
        (ca_dir / "ca.pem").read_bytes(),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))


def test_roles_at_the_mtls_gate(tmp_path: Path) -> None:
    """A technician may read the registry but not pull CRM data or mint claim tokens; an operator may."""
    storage = SqliteStorage(tmp_path / "cloud.db")
    storage.upsert_site("site-a", "A")
    storage.upsert_store("s1", "site-a", "S1")
    ca_dir = ca.init_ca(tmp_path / "ca").dir
    authority = ca.CertificateAuthority(ca_dir)
    tech = _creds(ca_dir, authority, storage, role="technician", site_id="site-a", name="li")
    oper = _creds(ca_dir, authority, storage, role="operator", name="ops")
    token_req = registry_pb2.CreateClaimTokenRequest(site_id="site-a", store_id="s1", profile="mirror")
    with start_server(tmp_path / "cloud.db", port=0, storage=storage, tls_dir=ca_dir) as srv:
        with grpc.secure_channel(srv.address, tech) as ch:
            with pytest.raises(grpc.RpcError) as info:
                sync_pb2_grpc.SyncStub(ch).Pull(sync_pb2.PullRequest(site_id="site-a"), timeout=5)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.RpcError) as info:
                registry_pb2_grpc.DeviceRegistryStub(ch).CreateClaimToken(token_req, timeout=5)
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with grpc.secure_channel(srv.address, oper) as ch:
            assert registry_pb2_grpc.DeviceRegistryStub(ch).CreateClaimToken(token_req, timeout=5).token


def test_cli_ca_init_token_revoke_and_serve_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cloud.db"
    storage = SqliteStorage(db)
    storage.upsert_site("site-a", "A")
    storage.upsert_store("s1", "site-a", "S1")
    assert main(["ca", "init", "--dir", str(tmp_path / "ca"), "--host", "cloud.test"]) == 0
    assert "cloud.test" in capsys.readouterr().out
    assert main(["ca", "init", "--dir", str(tmp_path / "ca")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["ca", "issue-claim-token", "--db", str(db), "--site-id", "site-a", "--store-id", "s1",
                 "--profile", "mirror", "--json"]) == 0
    token = json.loads(capsys.readouterr().out)
    assert token["site_id"] == "site-a" and len(token["token"]) >= 24
    assert main(["ca", "revoke", "--db", str(db), "--device", "nobody"]) == 2
    assert "no unrevoked certificate" in capsys.readouterr().err
    # Plain text must be asked for, and only on loopback.
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", str(db), "--port", "0"])
    assert exit_info.value.code == 2 and "--tls-dir" in capsys.readouterr().err
    assert main(["serve", "--db", str(db), "--port", "0", "--insecure", "--host", "0.0.0.0"]) == 2
    assert "loopback only" in capsys.readouterr().err
    assert main(["serve", "--db", str(db), "--port", "0", "--tls-dir", str(tmp_path / "nope")]) == 2
    assert "ca init" in capsys.readouterr().err


def test_expired_claim_token_is_refused_at_enroll(tmp_path: Path) -> None:
    from cloud_stub import enrollment, registry
    from cloud_stub.errors import ConflictError

    storage = SqliteStorage(tmp_path / "cloud.db")
    storage.upsert_site("site-a", "A")
    storage.upsert_store("s1", "site-a", "S1")
    authority = ca.CertificateAuthority(ca.init_ca(tmp_path / "ca").dir)
    token = registry.create_claim_token(storage, site_id="site-a", store_id="s1", profile="mirror")["token"]
    with storage.transaction("age the token") as conn:
        conn.execute("UPDATE claim_tokens SET expires_at_ms = ?",
                     (int((datetime.now(UTC) - timedelta(seconds=1)).timestamp() * 1000),))
    with pytest.raises(ConflictError, match="expired"):
        enrollment.enroll(storage, authority, claim_token=token, csr_pem=_csr(), device_id="m1")
    assert ca.list_certificates(storage) == []

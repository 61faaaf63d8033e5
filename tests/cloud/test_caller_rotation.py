"""Certificate rotation revokes the old certificate (ca.ROTATION_GRACE_S after the new one is first
used, at the latest ca.ROTATION_CLAIM_S after it was issued), over real mTLS with real certificates.
The grace constants are shrunk or stretched per test instead of waiting for them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api.v1 import crm_service_pb2, crm_service_pb2_grpc, registry_pb2, registry_pb2_grpc
from cloud_stub import ca, registry
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from sync.identity import DeviceIdentity, build_csr, enroll

T = 5.0


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return ca.init_ca(tmp_path / "ca").dir


@pytest.fixture
def cloud(tmp_path: Path, ca_dir: Path) -> Iterator[CloudServer]:
    storage = SqliteStorage(tmp_path / "cloud.db")
    storage.upsert_site("a", "site a")
    storage.upsert_store("a-s1", "a", "store 1")
    storage.upsert_member(member_id="a-m1", site_id="a", name="王建")
    with start_server(tmp_path / "cloud.db", host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as srv:
        yield srv


@pytest.fixture
def device(tmp_path: Path, cloud: CloudServer, ca_dir: Path) -> DeviceIdentity:
    token = registry.create_claim_token(cloud.storage, site_id="a", store_id="a-s1", profile="mirror")["token"]
    return enroll(tmp_path / "dev", f"127.0.0.1:{cloud.enroll_port}", token,
                  ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id="mirror-1")


def _get_member(ident: DeviceIdentity) -> str:
    """A device call with `ident`'s certificate; the member id read."""
    with grpc.secure_channel(ident.sync_target, ident.channel_credentials()) as ch:
        return crm_service_pb2_grpc.CRMStub(ch).GetMember(
            crm_service_pb2.GetMemberRequest(member_id="a-m1"), timeout=T).member.member_id


def _refused(ident: DeviceIdentity) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        _get_member(ident)
    return info.value.code()


def _rotate_raw(ident: DeviceIdentity, key: ec.EllipticCurvePrivateKey) -> registry_pb2.EnrollResponse:
    """RotateCertificate with `ident`'s certificate for `key` (what the daemon sends)."""
    with grpc.secure_channel(ident.sync_target, ident.channel_credentials()) as ch:
        return registry_pb2_grpc.EnrollmentStub(ch).RotateCertificate(
            registry_pb2.RotateCertificateRequest(csr_pem=build_csr(key, ident.device_id)), timeout=T)


def test_old_certificate_is_refused_after_the_grace_new_one_works(cloud, device, monkeypatch) -> None:
    monkeypatch.setattr(ca, "ROTATION_GRACE_S", 0.0)  # "after the grace" without waiting for it
    new = device.rotate()
    assert new.serial != device.serial
    assert _get_member(device) == "a-m1"  # not used yet: the old one still works (a lost answer can be fetched)
    assert _get_member(new) == "a-m1"  # first use of the new certificate...
    assert _refused(device) == grpc.StatusCode.UNAUTHENTICATED  # ...ends the old one once the grace is over
    assert _get_member(new) == "a-m1"
    old_row = {r["serial"]: r for r in ca.list_certificates(cloud.storage)}[f"{device.serial:x}"]
    assert old_row["revoke_reason"] == f"rotated to {new.serial:x}"


def test_old_certificate_works_during_the_grace(cloud, device, monkeypatch) -> None:
    monkeypatch.setattr(ca, "ROTATION_GRACE_S", 3600.0)
    new = device.rotate()
    assert _get_member(new) == "a-m1"
    assert _get_member(device) == "a-m1"  # calls still made on the old channel finish within the grace
    ca.revoke(cloud.storage, serial=f"{device.serial:x}")  # the operator can still end it at once
    assert _refused(device) == grpc.StatusCode.UNAUTHENTICATED
    assert _get_member(new) == "a-m1"


def test_unused_new_certificate_ends_the_old_one_after_the_claim_window(device, monkeypatch) -> None:
    monkeypatch.setattr(ca, "ROTATION_CLAIM_S", 0.0)
    new = device.rotate()
    assert _refused(device) == grpc.StatusCode.UNAUTHENTICATED
    assert _get_member(new) == "a-m1"


def test_lost_rotation_answer_is_fetched_again_with_the_same_key_only(cloud, device) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    first = _rotate_raw(device, key)
    again = _rotate_raw(device, key)  # the answer was lost: same key → the same certificate
    assert (again.serial, again.certificate_pem) == (first.serial, first.certificate_pem)
    with pytest.raises(grpc.RpcError) as info:  # another key: one successor per certificate
        _rotate_raw(device, ec.generate_private_key(ec.SECP256R1()))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(ca.list_certificates(cloud.storage, "mirror-1")) == 2

"""Every device-side client follows a certificate rotation done by another process (sync.channel).

Real mTLS on loopback with a real CA in tmp_path. The rotation is done by a *different* DeviceIdentity
object, as admin-serve or `joyprov rotate-cert` would, and the new certificate is then used once, which
starts the cloud's grace (shrunk to 0 here): from then on the old certificate is refused. Each client was
built before the rotation and must go on working: by noticing the files changed (`files`), or, with the
file check pushed out of reach, by re-reading the identity on UNAUTHENTICATED (`refusal`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.v1 import (
    crm_service_pb2,
    crm_service_pb2_grpc,
    payment_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from cloud_stub import ca, fusion, registry
from cloud_stub.server import CloudServer, start_server
from device.mirror.find_car import CarFinder
from device.mirror.member_qr import KeyFetcher
from device.pos.payment import Evidence, PaymentError, PaymentGateway, PaymentOffline
from sync import channel as channel_mod
from sync.channel import DeviceChannel
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.identity import CERT_FILE, PENDING_KEY_FILE, DeviceIdentity, build_csr, enroll
from sync.replica import Replica

SITE, STORE, DEVICE = "a", "a-s1", "pos-1"
T = 5.0
EVIDENCE = Evidence(match_score=0.97, liveness_passed=True, liveness_method="depth", phone_last4_confirmed=False)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return ca.init_ca(tmp_path / "ca").dir


@pytest.fixture
def cloud(tmp_path: Path, ca_dir: Path, monkeypatch) -> Iterator[CloudServer]:
    """GIVEN an mTLS cloud whose rotation grace is 0: the first use of a new certificate ends the old one."""
    monkeypatch.setattr(ca, "ROTATION_GRACE_S", 0.0)
    with start_server(tmp_path / "cloud.db", host="127.0.0.1", port=0, tls_dir=ca_dir) as srv:
        srv.storage.upsert_site(SITE, "site a")
        srv.storage.upsert_store(STORE, SITE, "store 1")
        srv.storage.upsert_member(member_id="a-m1", site_id=SITE, name="王建")
        fusion.link_plate(srv.storage, "沪A12345", "a-m1", "parking-app binding")
        fusion.record_parking(srv.storage, "沪A12345", SITE, "B2-117", True)
        yield srv


@pytest.fixture
def ident(tmp_path: Path, cloud: CloudServer, ca_dir: Path) -> DeviceIdentity:
    """GIVEN an enrolled device (identity files in tmp_path/dev/identity)."""
    token = registry.create_claim_token(cloud.storage, site_id=SITE, store_id=STORE, profile="pos-flagship")["token"]
    return enroll(tmp_path / "dev" / "identity", f"127.0.0.1:{cloud.enroll_port}", token,
                  ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id=DEVICE)


@pytest.fixture(params=["files", "refusal"])
def mode(request, monkeypatch) -> str:
    """`files`: every call looks at the identity files; `refusal`: never before the next hour, so only
    the UNAUTHENTICATED path can switch the certificate."""
    monkeypatch.setattr(channel_mod, "IDENTITY_CHECK_S", 0.0 if request.param == "files" else 3600.0)
    return request.param


def _get_member(who: DeviceIdentity) -> str:
    with grpc.secure_channel(who.sync_target, who.channel_credentials()) as ch:
        return crm_service_pb2_grpc.CRMStub(ch).GetMember(
            crm_service_pb2.GetMemberRequest(member_id="a-m1"), timeout=T).member.member_id


def _refused(who: DeviceIdentity) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        _get_member(who)
    return info.value.code()


def rotate_elsewhere(identity_dir: Path, old: DeviceIdentity) -> DeviceIdentity:
    """WHEN another process (its own DeviceIdentity object) rotates and uses the new certificate once,
    THEN the old certificate is refused (what the clients built before must survive)."""
    new = DeviceIdentity.load(identity_dir).rotate()
    assert new.serial != old.serial
    assert _get_member(new) == "a-m1"  # first use: the old one's grace (0 here) starts
    assert _refused(old) == grpc.StatusCode.UNAUTHENTICATED
    return new


def _gateway(ident: DeviceIdentity) -> PaymentGateway:
    # What device.pos.build.connect_gateway makes for an enrolled π-POS.
    return PaymentGateway.connect(ident.sync_target, device_id=DEVICE, store_id=STORE,
                                  identity_dir=ident.identity_dir)


def test_payment_gateway_built_before_a_rotation_still_authorises(ident, mode) -> None:
    gateway = _gateway(ident)
    try:
        assert gateway.authorize("k-before", "a-m1", 1200, EVIDENCE).approved
        new = rotate_elsewhere(ident.identity_dir, ident)
        auth = gateway.authorize("k-after", "a-m1", 1200, EVIDENCE)
        assert auth.approved and auth.payment_id
        gateway.capture(auth.payment_id)
        assert gateway.channel.identity is not None and gateway.channel.identity.serial == new.serial
    finally:
        gateway.close()


def test_car_finder_built_before_a_rotation_still_finds(ident, mode) -> None:
    finder = CarFinder(ident.sync_target, identity_dir=ident.identity_dir)  # as features.build_features does
    try:
        assert finder.find("a-m1").status == "found"
        rotate_elsewhere(ident.identity_dir, ident)
        found = finder.find("a-m1")
        assert found.status == "found" and found.cars == [{"plate": "沪A·***45", "bay": "B2-117"}]
    finally:
        finder.close()


def test_member_qr_key_fetcher_follows_a_rotation(ident, mode) -> None:
    fetch = KeyFetcher(ident.sync_target, SITE, identity_dir=ident.identity_dir)  # as features.build_features
    assert len(fetch()) == 1
    rotate_elsewhere(ident.identity_dir, ident)
    assert len(fetch()) == 1


def _daemon(tmp_path: Path, ident: DeviceIdentity) -> SyncDaemon:
    # What `joyedge sync` (device/cli_sync.py) builds for an enrolled device.
    client = SyncClient(ident.sync_target, identity_dir=ident.identity_dir, identity=ident)
    replica = Replica(tmp_path / "dev" / "replica.db", TemplateCipher(tmp_path / "dev" / "keys"))
    return SyncDaemon(replica, client, device_id=DEVICE, site_id=SITE, store_id=STORE, identity=ident)


@pytest.mark.parametrize("cold", [True, False], ids=["snapshot-first", "pull"])
def test_sync_daemon_follows_a_rotation_by_another_process(tmp_path, cloud, ident, mode, cold) -> None:
    """The cold case rotates before the daemon's first round, so its first call is the Snapshot stream."""
    daemon = _daemon(tmp_path, ident)
    try:
        if not cold:
            assert daemon.pull_once()["members"] == 1
        new = rotate_elsewhere(ident.identity_dir, ident)
        cloud.storage.upsert_member(member_id="a-m2", site_id=SITE, name="李娜")
        assert daemon.pull_once()["members"] == (2 if cold else 1)
        assert daemon.replica.member("a-m2") is not None
        assert not daemon.maybe_rotate()  # it now judges the new certificate (30 days left), no stale rotation
        assert daemon.identity is not None and daemon.identity.serial == new.serial
    finally:
        daemon.close()
        daemon.replica.close()


def test_daemon_rotating_itself_switches_its_channel(tmp_path, cloud, ident, ca_dir, mode) -> None:
    """GIVEN a certificate inside the rotation window WHEN the daemon rotates THEN its own channel switches
    (no client rebuilt) and syncing goes on after the old certificate is refused."""
    key = serialization.load_pem_private_key(ident.key_pem, password=None)
    short = ca.CertificateAuthority(ca_dir).sign_csr(build_csr(key, DEVICE), site_id=SITE, store_id=STORE,
                                                     device_id=DEVICE, validity_s=2 * 24 * 3600)
    with cloud.storage.transaction("record") as conn:
        ca.record_certificate(conn, short)
    (ident.identity_dir / CERT_FILE).write_bytes(short.public_bytes(serialization.Encoding.PEM))
    old = DeviceIdentity.load(ident.identity_dir)
    assert old.needs_rotation()
    daemon = _daemon(tmp_path, old)
    client = daemon.client
    try:
        daemon.sync_once()
        assert daemon.client is client and daemon.identity is not None and daemon.identity.serial != old.serial
        assert client.identity is not None and client.identity.serial == daemon.identity.serial
        assert _refused(old) == grpc.StatusCode.UNAUTHENTICATED  # the daemon used the new one: grace over
        cloud.storage.upsert_member(member_id="a-m3", site_id=SITE, name="张伟")
        assert daemon.sync_once()["members"] == 1
    finally:
        daemon.close()
        daemon.replica.close()


def test_a_stale_identity_object_rotates_the_current_certificate(ident) -> None:
    """admin-serve keeps the DeviceIdentity it loaded at start: after the daemon rotated, a technician's
    rotation must rotate the device's current certificate, not fail on the replaced one."""
    stale = DeviceIdentity.load(ident.identity_dir)
    current = rotate_elsewhere(ident.identity_dir, ident)
    rotated = stale.rotate()
    assert rotated.serial not in (stale.serial, current.serial)
    assert DeviceIdentity.load(ident.identity_dir).serial == rotated.serial
    assert _get_member(rotated) == "a-m1"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_torn_rotation_never_produces_a_broken_channel(ident, monkeypatch) -> None:
    """GIVEN a rotation cut at each point a writer can be at (pending key written, certificate not yet;
    certificate written, key not renamed yet; a certificate file half written by a careless tool)
    THEN a channel that was open keeps working, and one built at that moment works too."""
    monkeypatch.setattr(channel_mod, "IDENTITY_CHECK_S", 0.0)  # look at the files on every call
    d = ident.identity_dir
    chan = DeviceChannel.follow(d, ident.sync_target)

    def works(c: DeviceChannel) -> str:
        return c.call(crm_service_pb2_grpc.CRMStub, lambda s: s.GetMember(
            crm_service_pb2.GetMemberRequest(member_id="a-m1"), timeout=T)).member.member_id

    try:
        # 1. The new key is written (pending), the cloud has not answered: the old pair is still the pair.
        key = ec.generate_private_key(ec.SECP256R1())
        (d / PENDING_KEY_FILE).write_bytes(_key_pem(key))
        assert works(chan) == "a-m1" and chan.identity is not None and chan.identity.serial == ident.serial
        fresh = DeviceChannel.follow(d, ident.sync_target)
        assert works(fresh) == "a-m1"
        fresh.close()

        # 2. The cloud signed it and the certificate is stored; the key is not renamed yet.
        with grpc.secure_channel(ident.sync_target, ident.channel_credentials()) as ch:
            resp = registry_pb2_grpc.EnrollmentStub(ch).RotateCertificate(
                registry_pb2.RotateCertificateRequest(csr_pem=build_csr(key, DEVICE)), timeout=T)
        (d / CERT_FILE).write_bytes(resp.certificate_pem.encode())
        assert works(chan) == "a-m1"  # switched to the new certificate with the pending key
        assert chan.identity is not None and f"{chan.identity.serial:x}" == resp.serial
        assert _refused(ident) == grpc.StatusCode.UNAUTHENTICATED  # so the old pair would have failed
        other = DeviceChannel.follow(d, ident.sync_target)
        assert works(other) == "a-m1"
        other.close()

        # 3. A certificate file cut in the middle (not one of our writers: they rename whole files).
        good = (d / CERT_FILE).read_bytes()
        (d / CERT_FILE).write_bytes(good[: len(good) // 2])
        assert works(chan) == "a-m1"  # keeps presenting the certificate it has
        (d / CERT_FILE).write_bytes(good)
    finally:
        chan.close()


def test_readers_never_see_a_mismatched_pair_while_another_process_rotates(ident) -> None:
    """A reader loading in a loop while rotations run never gets an error or a pair that is not one."""
    serials = {ident.serial}
    seen: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                got = DeviceIdentity.load(ident.identity_dir)
                cert = x509.load_pem_x509_certificate(got.cert_pem)
                key = serialization.load_pem_private_key(got.key_pem, password=None)
                assert cert.public_key().public_numbers() == key.public_key().public_numbers()
                seen.append(got.serial)
            except Exception as err:  # any failure is the finding
                errors.append(err)

    thread = threading.Thread(target=reader, name="identity-reader")
    thread.start()
    try:
        current = ident
        for _ in range(4):
            current = DeviceIdentity.load(ident.identity_dir).rotate()
            serials.add(current.serial)
            _get_member(current)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and seen and set(seen) <= serials


class _RefusingPayment(payment_pb2_grpc.PaymentServicer):
    """A cloud double that refuses every certificate, recording which one each call presented."""

    def __init__(self) -> None:
        self.presented: list[int] = []

    def Authorize(self, request, context):
        pem = context.auth_context()["x509_pem_cert"][0]
        self.presented.append(x509.load_pem_x509_certificate(pem).serial_number)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "certificate revoked")


@pytest.fixture
def refusing(ca_dir: Path) -> Iterator[tuple[str, _RefusingPayment]]:
    """GIVEN a Payment endpoint (mTLS, the cloud's server certificate) that refuses every call."""
    servicer = _RefusingPayment()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    payment_pb2_grpc.add_PaymentServicer_to_server(servicer, server)
    creds = grpc.ssl_server_credentials([((ca_dir / "server.key").read_bytes(), (ca_dir / "server.pem").read_bytes())],
                                        root_certificates=(ca_dir / "ca.pem").read_bytes(),
                                        require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(None).wait()


def test_refused_without_a_new_certificate_is_reported_once(ident, refusing, monkeypatch) -> None:
    """UNAUTHENTICATED and the files hold the same certificate: one call, PaymentError (not offline)."""
    monkeypatch.setattr(channel_mod, "IDENTITY_CHECK_S", 3600.0)
    target, servicer = refusing
    gateway = PaymentGateway.connect(target, device_id=DEVICE, store_id=STORE, identity_dir=ident.identity_dir)
    try:
        with pytest.raises(PaymentError, match="UNAUTHENTICATED") as info:
            gateway.authorize("k-1", "a-m1", 1200, EVIDENCE)
        assert not isinstance(info.value, PaymentOffline)
    finally:
        gateway.close()
    assert servicer.presented == [ident.serial]


def test_refused_again_on_the_new_certificate_is_retried_once_only(ident, refusing, monkeypatch) -> None:
    """UNAUTHENTICATED, a newer certificate on disk: one retry on it, refused again → reported, no loop."""
    monkeypatch.setattr(channel_mod, "IDENTITY_CHECK_S", 3600.0)
    target, servicer = refusing
    gateway = PaymentGateway.connect(target, device_id=DEVICE, store_id=STORE, identity_dir=ident.identity_dir)
    try:
        new = DeviceIdentity.load(ident.identity_dir).rotate()
        with pytest.raises(PaymentError, match="UNAUTHENTICATED"):
            gateway.authorize("k-1", "a-m1", 1200, EVIDENCE)
    finally:
        gateway.close()
    assert servicer.presented == [ident.serial, new.serial]


def test_a_switch_waits_for_the_calls_in_flight_on_the_old_channel(ident, cloud, monkeypatch) -> None:
    """The old channel stays open while a call holds it (the cloud's grace covers it) and is closed
    when that call ends; calls started after the switch present the new certificate."""
    monkeypatch.setattr(ca, "ROTATION_GRACE_S", 3600.0)
    chan = DeviceChannel.follow(ident.identity_dir, ident.sync_target)
    request = crm_service_pb2.GetMemberRequest(member_id="a-m1")
    try:
        with chan.lease() as held:
            new = DeviceIdentity.load(ident.identity_dir).rotate()
            assert chan.refresh() and chan.identity is not None and chan.identity.serial == new.serial
            assert _get_member(new) == "a-m1"  # first use; the old one is still inside its grace
            # The call "in flight" on the old channel still runs.
            assert held.stub(crm_service_pb2_grpc.CRMStub).GetMember(request, timeout=T).member.member_id == "a-m1"
        with pytest.raises(ValueError, match="closed"):
            held.stub(crm_service_pb2_grpc.CRMStub).GetMember(request, timeout=T)
        assert chan.call(crm_service_pb2_grpc.CRMStub,
                         lambda s: s.GetMember(request, timeout=T)).member.member_id == "a-m1"
    finally:
        chan.close()


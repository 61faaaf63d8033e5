"""Certificate rotation through the sync daemon: a device whose certificate (issued by the test CA
with a short validity) is inside the rotation window rotates on its next round over mTLS, switches
its client to the new certificate and keeps syncing; a failed rotation never stops syncing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from cloud_stub import ca, registry
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.identity import CERT_FILE, DeviceIdentity, build_csr, enroll
from sync.replica import Replica

SITE, STORE = "site-a", "site-a-s1"
SHORT_VALIDITY_S = 2 * 24 * 3600  # inside the 10-day rotation window from the start


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return ca.init_ca(tmp_path / "ca").dir


@pytest.fixture
def storage(tmp_path: Path) -> SqliteStorage:
    s = SqliteStorage(tmp_path / "cloud.db")
    s.upsert_site(SITE, SITE)
    s.upsert_store(STORE, SITE, "store 1")
    s.upsert_member(member_id="m1", site_id=SITE, name="王建")
    return s


@pytest.fixture
def cloud(tmp_path: Path, storage: SqliteStorage, ca_dir: Path) -> Iterator[CloudServer]:
    with start_server(tmp_path / "cloud.db", host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as srv:
        yield srv


def _short_lived(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path) -> DeviceIdentity:
    """GIVEN an enrolled device whose certificate the test CA re-issued for 2 days (recorded in the cloud)."""
    token = registry.create_claim_token(storage, site_id=SITE, store_id=STORE, profile="mirror")["token"]
    ident = enroll(tmp_path / "identity", f"127.0.0.1:{cloud.enroll_port}", token,
                   ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id="mirror-1")
    key = serialization.load_pem_private_key(ident.key_pem, password=None)
    cert = ca.CertificateAuthority(ca_dir).sign_csr(build_csr(key, "mirror-1"), site_id=SITE, store_id=STORE,
                                                    device_id="mirror-1", validity_s=SHORT_VALIDITY_S)
    with storage.transaction("record") as conn:
        ca.record_certificate(conn, cert)
    (ident.identity_dir / CERT_FILE).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    short = DeviceIdentity.load(ident.identity_dir)
    assert short.not_after - datetime.now(UTC) < timedelta(days=3) and short.needs_rotation()
    return short


def _daemon(tmp_path: Path, ident: DeviceIdentity) -> SyncDaemon:
    client = SyncClient(ident.sync_target, credentials=ident.channel_credentials(),
                        options=ident.channel_options())
    replica = Replica(tmp_path / "dev" / "replica.db", TemplateCipher(tmp_path / "dev" / "keys"))
    return SyncDaemon(replica, client, device_id=ident.device_id, site_id=ident.site_id, store_id=ident.store_id,
                      identity=ident)


def test_daemon_rotates_a_certificate_near_expiry_and_keeps_syncing(tmp_path, cloud, storage, ca_dir) -> None:
    old = _short_lived(tmp_path, cloud, storage, ca_dir)
    daemon = _daemon(tmp_path, old)
    old_client = daemon.client
    try:
        applied = daemon.sync_once()  # WHEN the daemon runs a round
        new = daemon.identity
        assert new is not None and new.serial != old.serial and not new.needs_rotation()
        assert daemon.client is not old_client  # rebuilt with the new certificate
        assert DeviceIdentity.load(old.identity_dir).serial == new.serial  # stored for the next start
        assert applied["members"] == 1 and daemon.replica.member("m1") is not None
        rows = {r["serial"]: r for r in ca.list_certificates(storage, "mirror-1")}
        assert rows[f"{new.serial:x}"]["replaces"] == f"{old.serial:x}"
        # The cloud now sees the new certificate: revoking the old one does not stop the daemon.
        ca.revoke(storage, serial=f"{old.serial:x}")
        storage.upsert_member(member_id="m2", site_id=SITE, name="李娜")
        assert daemon.sync_once()["members"] == 1
        assert not daemon.maybe_rotate()  # 30 days ahead again: nothing to do
    finally:
        daemon.close()
        daemon.replica.close()


def test_failed_rotation_does_not_stop_syncing(tmp_path, cloud, storage, ca_dir) -> None:
    old = _short_lived(tmp_path, cloud, storage, ca_dir)
    daemon = _daemon(tmp_path, old)
    # The identity dials the enrollment port, where no client certificate is asked for: RotateCertificate
    # is refused there (UNAUTHENTICATED), while the daemon's client still reaches the mTLS port.
    bad = dataclasses.replace(old, sync_target=f"127.0.0.1:{cloud.enroll_port}")
    daemon.identity = bad
    try:
        applied = daemon.sync_once()  # rotation fails (logged), the round still syncs on the old certificate
        assert applied["members"] == 1
        assert daemon.identity is bad and DeviceIdentity.load(old.identity_dir).serial == old.serial
        assert not daemon.maybe_rotate()  # not retried before ROTATE_RETRY_S
    finally:
        daemon.close()
        daemon.replica.close()

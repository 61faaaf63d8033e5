"""人脸寻车 and the member-QR keys through the real mTLS path: the cloud with its own CA in tmp_path, mirrors
enrolled with claim tokens (as `joyedge enroll` does), the mirror's own CarFinder/KeyFetcher on their
certificates. Scoping by the certificate's site, and a revoked mirror refused (the card says offline)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_stub import ca, fusion, registry
from cloud_stub.member_qr import MemberQrKeys, key_dir_for
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from device.errors import DeviceError
from device.mirror.find_car import CarFinder
from device.mirror.member_qr import KeyFetcher, KeyRing, MemberCodeVerifier, NonceLedger
from sync.identity import DeviceIdentity, enroll

BAY_A, BAY_B = "B2-117", "P1-008"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[CloudServer, SqliteStorage, Path]]:
    """GIVEN malls site-a and site-b on one mTLS cloud; member a1's car is parked at site-a, b1's at site-b;
    a1 also has a second car parked at site-b (which site-a's mirror must not reveal either)."""
    ca_dir = ca.init_ca(tmp_path / "ca").dir
    storage = SqliteStorage(tmp_path / "cloud.db")
    for site in ("site-a", "site-b"):
        storage.upsert_site(site, site)
        storage.upsert_store(f"{site}-s1", site, "store 1")
    storage.upsert_member(member_id="a1", site_id="site-a", name="王建")
    storage.upsert_member(member_id="b1", site_id="site-b", name="李娜")
    fusion.link_plate(storage, "沪A12345", "a1", "parking-app binding")
    fusion.record_parking(storage, "沪A12345", "site-a", BAY_A, True)
    fusion.link_plate(storage, "苏E99887", "a1", "parking-app binding")
    fusion.record_parking(storage, "苏E99887", "site-b", "P3-300", True)
    fusion.link_plate(storage, "浙B55501", "b1", "parking-app binding")
    fusion.record_parking(storage, "浙B55501", "site-b", BAY_B, True)
    with start_server(tmp_path / "cloud.db", port=0, storage=storage, tls_dir=ca_dir) as server:
        yield server, storage, ca_dir


def _mirror(tmp_path: Path, server: CloudServer, storage: SqliteStorage, ca_dir: Path, name: str,
            site: str) -> DeviceIdentity:
    token = registry.create_claim_token(storage, site_id=site, store_id=f"{site}-s1", profile="mirror")["token"]
    return enroll(tmp_path / name / "identity", f"127.0.0.1:{server.enroll_port}", token,
                  ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id=name)


def _finder(ident: DeviceIdentity) -> CarFinder:
    # What features.build_features makes for an enrolled mirror (sync.insecure = false).
    return CarFinder(ident.sync_target, credentials=ident.channel_credentials(), options=ident.channel_options())


def test_find_car_over_mtls_scoped_to_the_mirrors_site(tmp_path, cloud):
    server, storage, ca_dir = cloud
    mirror_a = _mirror(tmp_path, server, storage, ca_dir, "mirror-a", "site-a")
    mirror_b = _mirror(tmp_path, server, storage, ca_dir, "mirror-b", "site-b")
    finder_a, finder_b = _finder(mirror_a), _finder(mirror_b)
    try:
        found = finder_a.find("a1")
        # Only the car parked here, plate masked; the same member's car at the other mall is not shown.
        assert found.status == "found" and found.cars == [{"plate": "沪A·***45", "bay": BAY_A}]
        assert found.view()["message"] == "您的爱车停在"
        assert finder_a.find("b1").status == "none"  # another mall's member does not exist for this mirror
        # The other mall's mirror sees nothing of site-a: not a1 (a site-a member), not site-a's bay.
        other = finder_b.find("a1")
        assert other.status == "none" and other.cars == []
        assert finder_b.find("b1").cars == [{"plate": "浙B·***01", "bay": BAY_B}]
    finally:
        finder_a.close()
        finder_b.close()


def test_revoked_mirror_is_refused_and_says_offline(tmp_path, cloud, caplog):
    """GIVEN an enrolled mirror with an open channel WHEN the operator revokes its certificate THEN the next
    lookup on that same channel is refused by the cloud and the member card shows the offline message."""
    server, storage, ca_dir = cloud
    ident = _mirror(tmp_path, server, storage, ca_dir, "mirror-a", "site-a")
    finder = _finder(ident)
    try:
        assert finder.find("a1").status == "found"
        assert ca.revoke(storage, device_id="mirror-a") == [f"{ident.serial:x}"]
        with caplog.at_level(logging.ERROR, logger="device.mirror.find_car"):
            refused = finder.find("a1")
    finally:
        finder.close()
    assert refused.status == "offline" and refused.cars == []
    assert refused.view()["message"] == "离线，暂时无法查询车位，请稍后再试"
    assert "refused this device's certificate" in caplog.text


def test_member_qr_keys_over_mtls(tmp_path, cloud):
    """The mirror fetches its own site's keys on its certificate, never another site's; a revoked mirror
    gets nothing new but still verifies with the keys it cached."""
    server, storage, ca_dir = cloud
    ident = _mirror(tmp_path, server, storage, ca_dir, "mirror-a", "site-a")
    fetch = KeyFetcher(ident.sync_target, "site-a", credentials=ident.channel_credentials(),
                       options=ident.channel_options())
    ring = KeyRing("site-a", tmp_path / "keys.json", fetch)
    assert ring.refresh() and len(ring.keys()) == 1
    posing = KeyFetcher(ident.sync_target, "site-b", credentials=ident.channel_credentials(),
                        options=ident.channel_options())
    with pytest.raises(DeviceError, match="PERMISSION_DENIED"):
        posing()

    keys = MemberQrKeys(key_dir_for(tmp_path / "cloud.db"))
    verifier = MemberCodeVerifier("site-a", KeyRing("site-a", tmp_path / "keys.json", fetch), NonceLedger())
    ca.revoke(storage, device_id="mirror-a")
    with pytest.raises(DeviceError, match="UNAUTHENTICATED"):
        fetch()
    assert verifier.member_id(verifier.verify(keys.mint(storage, "a1"))) == "a1"  # offline check from the cache

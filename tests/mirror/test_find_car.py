"""人脸寻车 against the real cloud on loopback: found, scoped to the device's site, and offline."""

from __future__ import annotations

import socket

import pytest

from cloud_stub import fusion
from cloud_stub.errors import NotFoundError
from cloud_stub.storage import SqliteStorage
from device.mirror.find_car import CarFinder
from tests.mirror.conftest import BAY, NEW_MEMBER


def test_bay_found_none_and_other_site(mirror_cloud):
    finder = CarFinder(mirror_cloud.address, insecure=True)
    try:
        found = finder.find(mirror_cloud.hopper)
        assert found.status == "found" and found.cars == [{"plate": "沪A·***45", "bay": BAY}]
        assert found.view()["message"] == "您的爱车停在"
        assert finder.find(NEW_MEMBER).status == "none"  # no car linked
        assert finder.find("M-does-not-exist").status == "none"
    finally:
        finder.close()
    # A device's call is scoped by its certificate's site (plain text here, so by the argument).
    storage = SqliteStorage(mirror_cloud.db)
    storage.upsert_site("site-other", "other")
    with pytest.raises(NotFoundError):  # a member of another site does not exist for that site's devices
        fusion.find_car(storage, 1, mirror_cloud.hopper, site_id="site-other")
    assert fusion.find_car(storage, 1, mirror_cloud.hopper, site_id=mirror_cloud.site_id)["cars"][0]["bay"] == BAY


def test_cloud_unreachable_says_offline_quickly():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    finder = CarFinder(f"127.0.0.1:{port}", insecure=True, deadline_s=0.5)
    try:
        result = finder.find("M1")
    finally:
        finder.close()
    assert result.status == "offline" and "离线" in result.view()["message"]

"""Fixtures for the sync tests: a real reference cloud on loopback port 0, a seeded site, a device."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from api.v1 import crm_pb2
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from sync import client as client_mod
from sync import daemon as daemon_mod
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.replica import Replica

SITE, STORE, OTHER_SITE = "site-t", "store-t1", "site-x"
DAY_MS = 24 * 3600 * 1000


def vector(seed: int) -> bytes:
    """A deterministic unit-ish template vector (float32 bytes)."""
    v = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


def seed_site(storage: SqliteStorage, members: int = 5) -> None:
    """GIVEN a site with a store, `members` members (one consented template and one coupon each),
    and a member of another site."""
    now = int(time.time() * 1000)
    storage.upsert_site(SITE, "test site")
    storage.upsert_store(STORE, SITE, "test store")
    storage.upsert_site(OTHER_SITE, "other site")
    storage.upsert_member(member_id="X1", site_id=OTHER_SITE, name="外人")
    for i in range(1, members + 1):
        mid = f"M{i}"
        storage.upsert_member(member_id=mid, site_id=SITE, name=f"会员{i}", points=100)
        cid = storage.add_consent(member_id=mid, device_id="seed", text_version="v1", consent_id=f"{mid}-c")
        storage.add_template(member_id=mid, consent_id=cid, model="dlib", vector=vector(i), template_id=f"{mid}-t1")
        storage.upsert_coupon(coupon_id=f"{mid}-cp", member_id=mid, title="10元券",
                              kind=crm_pb2.COUPON_KIND_CASH, value_cents=1000, valid_from_ms=now - DAY_MS,
                              valid_until_ms=now + 30 * DAY_MS)


@dataclass
class Cloud:
    """A running reference cloud; `restart()` brings it back on the same port."""

    db: Path
    server: CloudServer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def storage(self) -> SqliteStorage:
        return self.server.storage  # type: ignore[return-value]

    def stop(self) -> None:
        self.server.stop(grace=0)

    def restart(self) -> None:
        port = self.server.port
        self.server = start_server(self.db, port=port)


@pytest.fixture
def fast_timing(monkeypatch) -> None:
    """Shrink the daemon's and the client's timing constants so tests wait milliseconds, not seconds."""
    monkeypatch.setattr(daemon_mod, "BACKOFF_INITIAL_S", 0.05)
    monkeypatch.setattr(daemon_mod, "BACKOFF_MAX_S", 0.2)
    monkeypatch.setattr(daemon_mod, "PUSH_POLL_S", 0.02)
    monkeypatch.setattr(daemon_mod, "LONG_POLL_MS", 500)
    monkeypatch.setattr(client_mod, "RETRY_INITIAL_S", 0.01)
    monkeypatch.setattr(client_mod, "RETRY_MAX_S", 0.05)


@pytest.fixture
def cloud(tmp_path) -> Iterator[Cloud]:
    db = tmp_path / "cloud.db"
    seed_site(SqliteStorage(db))
    c = Cloud(db, start_server(db, port=0))
    yield c
    c.stop()


@pytest.fixture
def device(tmp_path, cloud) -> Iterator[Callable[..., SyncDaemon]]:
    """A factory of sync daemons on one replica file (the app side uses `daemon.outbox`)."""
    made: list[tuple[Replica, SyncClient]] = []

    def make(**kw) -> SyncDaemon:
        replica = Replica(tmp_path / "dev" / "replica.db", TemplateCipher(tmp_path / "dev" / "identity"))
        client = SyncClient(kw.pop("target", cloud.address), insecure=True)
        made.append((replica, client))
        return SyncDaemon(replica, client, device_id=kw.pop("device_id", "dev-1"), site_id=kw.pop("site_id", SITE),
                          store_id=STORE, **kw)

    yield make
    for replica, client in made:
        client.close()
        replica.close()

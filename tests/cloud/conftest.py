"""Fixtures for the reference cloud: a real SQLite file in tmp_path and a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from api.v1 import sync_pb2_grpc
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cloud.db"


@pytest.fixture
def storage(db_path: Path) -> SqliteStorage:
    return SqliteStorage(db_path)


@pytest.fixture
def server(db_path: Path, storage: SqliteStorage) -> Iterator[CloudServer]:
    with start_server(db_path, port=0, storage=storage) as srv:
        yield srv


@pytest.fixture
def channel(server: CloudServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def sync_stub(channel: grpc.Channel) -> sync_pb2_grpc.SyncStub:
    return sync_pb2_grpc.SyncStub(channel)


# --- domain services (same server, same channel) -----------------------------------------------
from api.v1 import (  # noqa: E402
    credit_pb2_grpc,
    crm_service_pb2_grpc,
    fusion_pb2_grpc,
    marketing_pb2_grpc,
    payment_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

SITE = "site-t"
STORE = "store-t1"
STORE2 = "store-t2"


@pytest.fixture
def stubs(channel: grpc.Channel) -> dict[str, object]:
    """A stub per domain service, on the loopback channel."""
    return {
        "crm": crm_service_pb2_grpc.CRMStub(channel),
        "marketing": marketing_pb2_grpc.MarketingStub(channel),
        "credit": credit_pb2_grpc.CreditStub(channel),
        "fusion": fusion_pb2_grpc.FusionStub(channel),
        "payment": payment_pb2_grpc.PaymentStub(channel),
        "registry": registry_pb2_grpc.DeviceRegistryStub(channel),
    }


@pytest.fixture
def site(stubs: dict[str, object]) -> str:
    """A site with two branded stores, created over gRPC."""
    reg = stubs["registry"]
    reg.UpsertSite(registry_pb2.Site(site_id=SITE, name="测试广场"), timeout=10)
    reg.UpsertStore(registry_pb2.Store(store_id=STORE, site_id=SITE, name="一楼", brand="优衣库"), timeout=10)
    reg.UpsertStore(registry_pb2.Store(store_id=STORE2, site_id=SITE, name="二楼", brand="星巴克"), timeout=10)
    return SITE

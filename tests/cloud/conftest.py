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

"""Bad input on both sides: garbage and protocol-breaking answers, malformed and oversized messages,
clock skew, a full disk. Each gives a clear error, corrupts nothing, and work resumes afterwards."""

from __future__ import annotations

import sqlite3
import time
from concurrent import futures

import grpc
import pytest

from api.v1 import crm_pb2, sync_pb2, sync_pb2_grpc
from sync.errors import ReplicaError, SyncError
from tests.sync.conftest import STORE

DAY_MS = 24 * 3600 * 1000


class _Scripted(sync_pb2_grpc.SyncServicer):
    """A cloud twin that answers what the test scripts (a broken or hostile server)."""

    def __init__(self, pull=None, push=None):
        self.pull, self.push = pull, push

    def Pull(self, request, context):
        return self.pull(request)

    def Push(self, request, context):
        return self.push(request)


def _serve(handler) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    if isinstance(handler, grpc.GenericRpcHandler):
        server.add_generic_rpc_handlers((handler,))
    else:
        sync_pb2_grpc.add_SyncServicer_to_server(handler, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


class _Garbage(grpc.GenericRpcHandler):
    """Answers every call with bytes that are not a protobuf message."""

    def service(self, details):
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\xff\xff\xff\x07garbage",
                                                   request_deserializer=None, response_serializer=None)


def _integrity(replica) -> str:
    with replica._lock:
        return replica._conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_server_answering_garbage_is_a_clear_error_and_changes_nothing(cloud, device, fast_timing):
    server, addr = _serve(_Garbage())
    try:
        d = device(target=addr)
        d.outbox.visit("M1", STORE, 0.9)
        with pytest.raises(SyncError, match="not a PushResponse|refused Push"):
            d.sync_once()
        with pytest.raises(SyncError, match="not a SnapshotPage|refused Snapshot"):
            d.pull_once()  # a cold replica asks for a snapshot first
        with d.replica.transaction() as conn:  # a replica with cursors pulls deltas
            conn.execute("INSERT INTO cursors (stream, seq) VALUES ('members', 0)")
        with pytest.raises(SyncError, match="not a PullResponse|refused Pull"):
            d.pull_once()
        with d.replica.transaction() as conn:
            conn.execute("DELETE FROM cursors")
        assert d.status.state == "error"
        assert d.outbox.depth() == 1 and d.replica.counts()["members"] == 0
    finally:
        server.stop(0)
    # The real cloud comes back: the same replica syncs and drains.
    good = device()
    good.sync_once()
    assert good.outbox.depth() == 0 and good.replica.counts()["members"] == 5


def test_protocol_breaking_answers_are_refused_whole(device, fast_timing):
    m = crm_pb2.Member(member_id="M1", name="a")
    backwards = sync_pb2.PullResponse(batches=[sync_pb2.StreamBatch(
        stream=sync_pb2.STREAM_MEMBERS, next_seq=1,
        changes=[sync_pb2.Change(seq=5, key="M1", member=m), sync_pb2.Change(seq=3, key="M1", member=m)])])
    wrong_acks = sync_pb2.PushResponse(acks=[sync_pb2.EventAck(event_id="not-sent", status=1)])
    server, addr = _serve(_Scripted(pull=lambda r: backwards, push=lambda r: wrong_acks))
    try:
        d = device(target=addr)
        with pytest.raises(ReplicaError, match="not ascending"):
            d.pull_once()
        assert d.replica.cursors()[sync_pb2.STREAM_MEMBERS] == 0 and d.replica.member("M1") is None
        d.outbox.visit("M1", STORE, 0.9)
        with pytest.raises(SyncError, match="do not match"):
            d.push_once()
        assert d.outbox.depth() == 1 and d.outbox.quarantined() == []
    finally:
        server.stop(0)


def test_malformed_and_oversized_requests_are_refused_by_the_cloud(cloud, device):
    with grpc.insecure_channel(cloud.address) as ch:
        raw = ch.unary_unary("/joyedge.api.v1.Sync/Push")
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=5)  # a length prefix running past the end
        assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        stub = sync_pb2_grpc.SyncStub(ch)
        big = sync_pb2.PushRequest(device_id="dev-1", site_id="site-t", events=[sync_pb2.DeviceEvent(
            event_id="6f1c1b40-2b53-4a39-9d7e-0b1f1f1f1f1f", stream="s", stream_seq=1,
            traffic=sync_pb2.TrafficAggregateEvent(store_id="x" * (5 * 1024 * 1024), window_ms=1))])
        with pytest.raises(grpc.RpcError) as err:
            stub.Push(big, timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        bad_uuid = sync_pb2.PushRequest(device_id="dev-1", site_id="site-t", events=[sync_pb2.DeviceEvent(
            event_id="not-a-uuid", stream="visits", stream_seq=1, visit=sync_pb2.VisitEvent(member_id="M1"))])
        with pytest.raises(grpc.RpcError) as err:
            stub.Push(bad_uuid, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "UUID" in err.value.details()
    # The cloud is unharmed and still serves a device.
    d = device()
    d.outbox.visit("M1", STORE, 0.9)
    d.sync_once()
    assert d.outbox.depth() == 0
    # An event too big to ever push is refused when recorded, not left to block its stream.
    with pytest.raises(SyncError, match="over the"):
        d.outbox.enrollment("M1", "M1-c", "M1-big", "dlib", b"\0" * (300 * 1024))
    assert d.outbox.depth() == 0


def test_a_skewed_device_clock_is_corrected_by_the_cloud(cloud, device, fast_timing):
    skew_s = 3 * 24 * 3600  # the device thinks it is three days later
    d = device(clock=lambda: time.time() + skew_s)
    d.outbox.visit("M1", STORE, 0.9)
    assert d.push_once()["accepted"] == 1
    assert abs(d.status.clock_skew_ms + skew_s * 1000) < 60_000
    conn = sqlite3.connect(cloud.db)
    try:
        at = conn.execute("SELECT at_ms FROM visits").fetchone()[0]
    finally:
        conn.close()
    assert abs(at - int(time.time() * 1000)) < 60_000  # stored in cloud time, not three days ahead


def test_a_full_disk_fails_clearly_and_resumes(cloud, device, fast_timing):
    for i in range(300):  # more than the free pages of an empty replica can take
        cloud.storage.upsert_tag(tag_id=f"T{i}", member_id=f"M{i % 5 + 1}", kind=f"k{i}", value="v" * 200)
    d = device()
    d.outbox.visit("M1", STORE, 0.9)  # the schema exists; now cap the file where it stands
    with d.replica._lock:
        pages = d.replica._conn.execute("PRAGMA page_count").fetchone()[0]
        d.replica._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(ReplicaError, match="full"):
        d.pull_once()
    with pytest.raises(ReplicaError, match="full"):
        for i in range(200):
            d.outbox.visit("M2", STORE, 0.9 + i * 1e-4)
    assert _integrity(d.replica) == "ok"
    depth = d.outbox.depth()
    # Space comes back: everything resumes, and what was recorded before goes out.
    with d.replica._lock:
        d.replica._conn.execute("PRAGMA max_page_count = 1073741823")
    d.sync_once()
    assert d.replica.counts()["members"] == 5 and d.replica.counts()["tags"] == 300
    assert d.outbox.depth() == 0 and depth >= 1
    assert _integrity(d.replica) == "ok"

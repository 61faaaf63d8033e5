"""Sync.Pull over real gRPC on loopback, against a real SQLite file."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api.v1 import crm_pb2, sync_pb2, sync_pb2_grpc
from cloud_stub.demo import seed_demo
from cloud_stub.server import CloudServer
from cloud_stub.storage import STREAMS, SqliteStorage

SITE = "site-demo"
OTHER = "site-other"
FIELDS = {
    sync_pb2.STREAM_MEMBERS: "member",
    sync_pb2.STREAM_TAGS: "tag",
    sync_pb2.STREAM_TEMPLATES: "template",
    sync_pb2.STREAM_COUPONS: "coupon",
}


def _cursors(seqs: dict[int, int]) -> list[sync_pb2.Cursor]:
    return [sync_pb2.Cursor(stream=s, seq=q) for s, q in seqs.items()]


def _enroll(storage: SqliteStorage, member_id: str, n: int) -> list[str]:
    consent = storage.add_consent(member_id=member_id, device_id="test", text_version="face-consent-v1")
    rng = np.random.default_rng(len(member_id) + n)
    return [
        storage.add_template(member_id=member_id, consent_id=consent, model="dlib_resnet_v1",
                             vector=rng.standard_normal(128).astype(np.float32))
        for _ in range(n)
    ]


def _seed_two_sites(storage: SqliteStorage) -> None:
    """GIVEN the demo site (12 members, 2 of them with templates) and another site with one member."""
    report = seed_demo(storage, members=12)
    for m in report.members[:2]:
        _enroll(storage, m.member_id, 2)
    storage.upsert_site(OTHER, "另一个广场")
    storage.upsert_member(member_id="other-m1", site_id=OTHER, name="李淑华", phone="13900001111")
    storage.upsert_tag(tag_id="other-m1-rfm", member_id="other-m1", kind="rfm", value="重要价值客户")
    storage.upsert_coupon(coupon_id="other-m1-c1", member_id="other-m1", title="20元现金券",
                          kind=crm_pb2.COUPON_KIND_CASH, value_cents=2000, valid_from_ms=0, valid_until_ms=1)
    _enroll(storage, "other-m1", 1)


def _expected_keys(storage: SqliteStorage, site_id: str) -> dict[int, set[str]]:
    """Every live row of the site, per stream, read through storage (independent of Pull)."""
    return {s: {c[1] for c in storage.changes(s, site_id, 0, 10_000)[0] if not c[2]} for s in STREAMS}


def _pull_all(stub: sync_pb2_grpc.SyncStub, site_id: str, page: int) -> tuple[dict[int, list], dict[int, int]]:
    """Pull every stream in pages until no batch has more; check cursors on the way."""
    seqs = {s: 0 for s in STREAMS}
    got: dict[int, list] = {s: [] for s in STREAMS}
    for _ in range(1000):
        resp = stub.Pull(sync_pb2.PullRequest(device_id="dev-1", site_id=site_id, cursors=_cursors(seqs),
                                              max_changes=page), timeout=10)
        assert [b.stream for b in resp.batches] == list(seqs)
        more = False
        for batch in resp.batches:
            assert len(batch.changes) <= page
            ch_seqs = [c.seq for c in batch.changes]
            assert ch_seqs == sorted(ch_seqs) and all(q > seqs[batch.stream] for q in ch_seqs)
            assert batch.next_seq >= seqs[batch.stream]
            # A page ends at its last change; a finished stream may jump to the head seq (nothing of
            # this stream exists between its last change and the head).
            if batch.has_more:
                assert batch.next_seq == ch_seqs[-1]
            else:
                assert batch.next_seq >= (ch_seqs[-1] if ch_seqs else seqs[batch.stream])
            seqs[batch.stream] = batch.next_seq
            got[batch.stream].extend(batch.changes)
            more = more or batch.has_more
        if not more:
            return got, seqs
    raise AssertionError("pull never finished")


def test_pull_on_empty_db_returns_empty_batches_at_the_cursor(sync_stub: sync_pb2_grpc.SyncStub) -> None:
    seqs = {sync_pb2.STREAM_MEMBERS: 0, sync_pb2.STREAM_TAGS: 7, sync_pb2.STREAM_TEMPLATES: 42}
    resp = sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors(seqs)), timeout=10)
    assert [(b.stream, len(b.changes), b.next_seq, b.has_more) for b in resp.batches] == [
        (s, 0, q, False) for s, q in seqs.items()
    ]
    assert resp.server_time_ms > 0


def test_paged_pull_delivers_every_row_exactly_once(
    storage: SqliteStorage, sync_stub: sync_pb2_grpc.SyncStub
) -> None:
    _seed_two_sites(storage)
    expected = _expected_keys(storage, SITE)
    assert len(expected[sync_pb2.STREAM_MEMBERS]) == 12 and len(expected[sync_pb2.STREAM_TEMPLATES]) == 4

    got, seqs = _pull_all(sync_stub, SITE, page=5)

    for stream, changes in got.items():
        keys = [c.key for c in changes]
        assert len(keys) == len(set(keys)), f"duplicate keys in {sync_pb2.Stream.Name(stream)}"
        assert set(keys) == expected[stream]
        for c in changes:
            assert not c.deleted and c.WhichOneof("payload") == FIELDS[stream]
    members = {c.member.member_id: c.member for c in got[sync_pb2.STREAM_MEMBERS]}
    assert all(m.site_id == SITE and m.name and m.tier in {"普卡", "银卡", "金卡", "璀璨卡"} for m in members.values())
    for c in got[sync_pb2.STREAM_TEMPLATES]:
        assert len(c.template.vector) == 128 * 4 and c.template.member_id in members and c.template.consent_id
    # a second pull with the final cursors brings nothing new
    again = sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors(seqs)), timeout=10)
    assert all(not b.changes and not b.has_more and b.next_seq == seqs[b.stream] for b in again.batches)


def test_other_sites_rows_are_never_served(storage: SqliteStorage, sync_stub: sync_pb2_grpc.SyncStub) -> None:
    _seed_two_sites(storage)
    got, _ = _pull_all(sync_stub, SITE, page=500)
    served = {c.key for changes in got.values() for c in changes}
    assert not any(k.startswith("other-") for k in served)
    assert not any(c.template.member_id == "other-m1" for c in got[sync_pb2.STREAM_TEMPLATES])
    other, _ = _pull_all(sync_stub, OTHER, page=500)
    assert {c.key for c in other[sync_pb2.STREAM_MEMBERS]} == {"other-m1"}
    assert len(other[sync_pb2.STREAM_TEMPLATES]) == 1


def test_withdrawn_consent_arrives_as_template_tombstones(
    storage: SqliteStorage, sync_stub: sync_pb2_grpc.SyncStub
) -> None:
    storage.upsert_site(SITE, "s")
    storage.upsert_member(member_id="m1", site_id=SITE, name="王建")
    tids = _enroll(storage, "m1", 3)
    got, seqs = _pull_all(sync_stub, SITE, page=2)
    assert {c.key for c in got[sync_pb2.STREAM_TEMPLATES]} == set(tids)

    storage.withdraw_consent("m1")

    resp = sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors(seqs)), timeout=10)
    (batch,) = [b for b in resp.batches if b.stream == sync_pb2.STREAM_TEMPLATES]
    assert {c.key for c in batch.changes} == set(tids)
    for c in batch.changes:
        assert c.deleted and c.WhichOneof("payload") is None and c.seq > seqs[sync_pb2.STREAM_TEMPLATES]
    others = [b for b in resp.batches if b.stream != sync_pb2.STREAM_TEMPLATES]
    assert all(not b.changes for b in others)


def test_missing_site_id_is_invalid_argument(sync_stub: sync_pb2_grpc.SyncStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        sync_stub.Pull(sync_pb2.PullRequest(cursors=_cursors({sync_pb2.STREAM_MEMBERS: 0})), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "site_id" in info.value.details()


def test_unknown_stream_is_invalid_argument(sync_stub: sync_pb2_grpc.SyncStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors({0: 0})), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_max_changes_is_capped(storage: SqliteStorage, sync_stub: sync_pb2_grpc.SyncStub) -> None:
    import cloud_stub.sync_service as svc

    seed_demo(storage, members=3)
    cap = svc.MAX_CHANGES_CAP
    svc.MAX_CHANGES_CAP = 2  # the server runs in this process: shrink the module constant
    try:
        resp = sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors({sync_pb2.STREAM_TAGS: 0}),
                                                   max_changes=1000), timeout=10)
    finally:
        svc.MAX_CHANGES_CAP = cap
    assert len(resp.batches[0].changes) == 2 and resp.batches[0].has_more


def test_one_millisecond_deadline_is_deadline_exceeded(
    storage: SqliteStorage, sync_stub: sync_pb2_grpc.SyncStub
) -> None:
    seed_demo(storage, members=12)
    with pytest.raises(grpc.RpcError) as info:
        sync_stub.Pull(sync_pb2.PullRequest(site_id=SITE, cursors=_cursors({s: 0 for s in STREAMS})),
                       timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_health_reports_serving(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "joyedge.api.v1.Sync"):
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_sync(channel: grpc.Channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (resp,) = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=5))
    names = {s.name for s in resp.list_services_response.service}
    assert {"joyedge.api.v1.Sync", "grpc.health.v1.Health"} <= names


def test_second_server_on_same_port_fails_with_port_in_use(server: CloudServer, db_path) -> None:
    from cloud_stub.errors import CloudError
    from cloud_stub.server import start_server

    with pytest.raises(CloudError, match="in use"):
        start_server(db_path, port=server.port)


def test_context_manager_stops_server_when_an_exception_passes(db_path) -> None:
    from cloud_stub.server import start_server

    with pytest.raises(RuntimeError, match="boom"), start_server(db_path, port=0) as srv:
        port = srv.port
        raise RuntimeError("boom")
    # the port is free again: a new server can take it
    with start_server(db_path, port=port) as again:
        assert again.port == port

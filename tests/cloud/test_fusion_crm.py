"""Fusion (identity graph, merge/split, brand lift, 人脸寻车), CRM points and consent withdrawal,
and bad input over real gRPC: clear status codes, nothing written."""

from __future__ import annotations

import grpc
import pytest

from api.v1 import (
    crm_service_pb2,
    fusion_pb2,
    marketing_pb2,
    payment_pb2,
    registry_pb2,
    sync_pb2,
    sync_pb2_grpc,
)
from cloud_stub.storage import now_ms
from tests.cloud.helpers import DAY_MS, add_member, buy, fingerprint

F = fusion_pb2


def ref(t: int, v: str) -> F.IdentityRef:
    return F.IdentityRef(id_type=t, id_value=v)


def test_identity_graph_resolves_merges_and_splits(stubs, site, server) -> None:
    fu = stubs["fusion"]
    add_member(stubs, "a", phone="13900001111")
    add_member(stubs, "b", phone="13900002222")
    fu.Link(F.LinkedIdentity(id_type=F.ID_TYPE_OPEN_ID, id_value="wx-open-a", member_id="a", evidence="wechat login",
                             confidence=1.0), timeout=10)
    fu.Link(F.LinkedIdentity(id_type=F.ID_TYPE_MAC_ID, id_value="aa:bb:cc:dd:ee:ff", member_id="b",
                             evidence="wifi probe at store-t1", confidence=0.6), timeout=10)
    assert fu.Resolve(ref(F.ID_TYPE_PHONE, "139-0000-1111"), timeout=10).member_id == "a"
    assert fu.Resolve(ref(F.ID_TYPE_MEMBER_ID, "b"), timeout=10).member_id == "b"
    with pytest.raises(grpc.RpcError) as err:  # an identity has one owner; merge or split instead
        fu.Link(F.LinkedIdentity(id_type=F.ID_TYPE_OPEN_ID, id_value="wx-open-a", member_id="b", evidence="x"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    moved = fu.Merge(F.MergeRequest(keep_member_id="a", absorb_member_id="b", evidence="same phone owner"), timeout=10)
    assert moved.identities_moved == 1
    got = fu.Resolve(ref(F.ID_TYPE_MAC_ID, "aa:bb:cc:dd:ee:ff"), timeout=10)
    assert got.member_id == "a" and got.via.evidence == "wifi probe at store-t1"
    assert list(fu.Resolve(ref(F.ID_TYPE_MEMBER_ID, "b"), timeout=10).merged_path) == ["b", "a"]
    with pytest.raises(grpc.RpcError):
        fu.Merge(F.MergeRequest(keep_member_id="b", absorb_member_id="a", evidence="loop"), timeout=10)
    undone = fu.Split(F.SplitRequest(member_id="a", to_member_id="b", evidence="two people"), timeout=10)
    assert undone.identities_moved == 1
    assert fu.Resolve(ref(F.ID_TYPE_MAC_ID, "aa:bb:cc:dd:ee:ff"), timeout=10).member_id == "b"
    ids = fu.ListIdentities(F.ListIdentitiesRequest(member_id="a"), timeout=10).identities
    assert [i.id_value for i in ids] == ["wx-open-a"]


def test_brand_lift_and_clusters_from_co_purchases(stubs, site, server, storage) -> None:
    """GIVEN 20 members who buy 优衣库+ZARA together and 20 who buy 星巴克+喜茶 THEN those pairs have
    lift 2 and form the two clusters; cross pairs do not appear (never bought together)."""
    storage.upsert_store("s-zara", "site-t", "三楼", "ZARA")
    storage.upsert_store("s-tea", "site-t", "B1", "喜茶")
    at = now_ms() - DAY_MS
    for i in range(40):
        add_member(stubs, f"c{i}")
        pair = ("store-t1", "s-zara") if i < 20 else ("store-t2", "s-tea")
        for j, s in enumerate(pair):
            buy(stubs, f"c{i}-{j}", f"c{i}", 5000, at, store_id=s)
    resp = stubs["fusion"].BrandCorrelation(F.BrandCorrelationRequest(site_id="site-t"), timeout=10)
    assert resp.members == 40
    pairs = {(p.brand_a, p.brand_b): p for p in resp.pairs}
    assert set(pairs) == {("ZARA", "优衣库"), ("喜茶", "星巴克")}
    assert all(abs(p.lift - 2.0) < 1e-9 and p.confidence_a_to_b == 1.0 for p in pairs.values())
    assert sorted(sorted(c.brands) for c in resp.clusters) == [["ZARA", "优衣库"], ["喜茶", "星巴克"]]


def test_find_car_by_face_id(stubs, site, server, storage) -> None:
    add_member(stubs, "driver")
    cid = stubs["crm"].RecordConsent(crm_service_pb2.RecordConsentRequest(
        member_id="driver", device_id="mirror-1", text_version="face-consent-v1"), timeout=10).consent_id
    tid = stubs["crm"].EnrollFace(crm_service_pb2.EnrollFaceRequest(
        member_id="driver", consent_id=cid, model="dlib_resnet_v1", vector=b"\x00\x00\x80?" * 128), timeout=10).template_id
    fu = stubs["fusion"]
    fu.LinkPlate(F.PlateLink(plate="沪a12345", member_id="driver", evidence="parking app"), timeout=10)
    fu.RecordParking(F.ParkingEvent(plate="沪A12345", site_id="site-t", bay="B2-117", entered=True), timeout=10)
    found = fu.FindCar(F.FindCarRequest(who=ref(F.ID_TYPE_FACE_ID, tid)), timeout=10)
    assert found.member_id == "driver" and [(c.plate, c.bay) for c in found.cars] == [("沪A12345", "B2-117")]
    fu.RecordParking(F.ParkingEvent(plate="沪A12345", site_id="site-t", entered=False), timeout=10)
    assert not fu.FindCar(F.FindCarRequest(who=ref(F.ID_TYPE_FACE_ID, tid)), timeout=10).cars
    # Withdrawing consent deletes the template and devices receive its tombstone.
    assert stubs["crm"].WithdrawConsent(crm_service_pb2.WithdrawConsentRequest(member_id="driver"),
                                        timeout=10).templates_deleted == 1
    with grpc.insecure_channel(server.address) as ch:
        pulled = sync_pb2_grpc.SyncStub(ch).Pull(sync_pb2.PullRequest(
            site_id="site-t", cursors=[sync_pb2.Cursor(stream=sync_pb2.STREAM_TEMPLATES)]), timeout=10)
    assert [(c.key, c.deleted) for c in pulled.batches[0].changes] == [(tid, True)]


def test_points_ledger_upgrades_the_tier_and_never_goes_negative(stubs, site, server) -> None:
    add_member(stubs, "p")
    crm = stubs["crm"]
    e = crm.AddPoints(crm_service_pb2.AddPointsRequest(entry_id="e1", member_id="p", delta=5000, reason="刷脸积分"), timeout=10)
    assert (e.balance_after, e.tier_after) == (5000, "金卡")
    assert crm.AddPoints(crm_service_pb2.AddPointsRequest(entry_id="e1", member_id="p", delta=5000, reason="刷脸积分"),
                         timeout=10) == e
    with pytest.raises(grpc.RpcError) as err:
        crm.AddPoints(crm_service_pb2.AddPointsRequest(entry_id="e2", member_id="p", delta=-5001, reason="兑换"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    m = crm.GetMember(crm_service_pb2.GetMemberRequest(member_id="p"), timeout=10).member
    assert (m.points, m.tier, m.phone_last4) == (5000, "金卡", "1234")


BAD = [
    ("crm", "RecordTransaction", crm_service_pb2.Transaction(txn_id="t", member_id="m", store_id="store-t1",
                                                             amount_cents=-100, at_ms=1_700_000_000_000), "INVALID_ARGUMENT"),
    ("crm", "RecordTransaction", crm_service_pb2.Transaction(txn_id="t", member_id="m", store_id="store-t1",
                                                             amount_cents=100, at_ms=99_999_999_999_999), "INVALID_ARGUMENT"),
    ("crm", "RecordTransaction", crm_service_pb2.Transaction(txn_id="t", member_id="ghost", store_id="store-t1",
                                                             amount_cents=100, at_ms=1_700_000_000_000), "NOT_FOUND"),
    ("crm", "UpsertMember", crm_service_pb2.UpsertMemberRequest(member_id="x", site_id="site-t", name="张三",
                                                                birthday="1800-13-45"), "INVALID_ARGUMENT"),
    ("crm", "UpsertMember", crm_service_pb2.UpsertMemberRequest(member_id="x" * 500, site_id="site-t", name="z"),
     "INVALID_ARGUMENT"),
    ("crm", "UpsertMember", crm_service_pb2.UpsertMemberRequest(member_id="x", site_id="nosite", name="z"), "NOT_FOUND"),
    ("crm", "GetMember", crm_service_pb2.GetMemberRequest(member_id="ghost"), "NOT_FOUND"),
    ("crm", "GetMember", crm_service_pb2.GetMemberRequest(member_id=""), "INVALID_ARGUMENT"),
    ("crm", "EnrollFace", crm_service_pb2.EnrollFaceRequest(member_id="m", consent_id="none", model="d",
                                                            vector=b"\0" * 512), "INVALID_ARGUMENT"),
    ("marketing", "CreateCampaign", marketing_pb2.Campaign(campaign_id="c", site_id="site-t", name="n",
                                                           expression="import os", title="t", kind=1,
                                                           value_cents=100, valid_from_ms=1_700_000_000_000,
                                                           valid_until_ms=1_700_000_001_000), "INVALID_ARGUMENT"),
    ("marketing", "RedeemCoupon", marketing_pb2.RedeemCouponRequest(redemption_id="r", coupon_id="nope", member_id="m",
                                                                    store_id="store-t1", device_id="d",
                                                                    order_amount_cents=100), "NOT_FOUND"),
    ("payment", "Authorize", payment_pb2.AuthorizeRequest(idempotency_key="k", member_id="m", device_id="d",
                                                          store_id="store-t1", amount_cents=0), "INVALID_ARGUMENT"),
    ("payment", "Capture", payment_pb2.CaptureRequest(payment_id="pay-none"), "NOT_FOUND"),
    ("fusion", "Resolve", F.IdentityRef(id_type=F.ID_TYPE_OPEN_ID, id_value="unknown"), "NOT_FOUND"),
    ("fusion", "Resolve", F.IdentityRef(id_type=99, id_value="x"), "INVALID_ARGUMENT"),
    ("fusion", "LinkPlate", F.PlateLink(plate="not a plate!", member_id="m", evidence="e"), "INVALID_ARGUMENT"),
    ("registry", "CreateClaimToken", registry_pb2.CreateClaimTokenRequest(site_id="site-t", store_id="store-t1",
                                                                          profile="toaster"), "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize(("service", "method", "request_msg", "code"), BAD,
                         ids=[f"{s}.{m}-{i}" for i, (s, m, _, _) in enumerate(BAD)])
def test_bad_input_gets_a_clear_status_and_writes_nothing(stubs, site, db_path, service, method, request_msg, code) -> None:
    add_member(stubs, "m")
    before = fingerprint(db_path)
    with pytest.raises(grpc.RpcError) as err:
        getattr(stubs[service], method)(request_msg, timeout=10)
    assert err.value.code().name == code
    assert len(err.value.details()) > 15  # a sentence a person can act on
    assert fingerprint(db_path) == before


def test_oversized_payload_is_refused_before_any_handler(stubs, site, db_path) -> None:
    before = fingerprint(db_path)
    with pytest.raises(grpc.RpcError) as err:
        stubs["crm"].EnrollFace(crm_service_pb2.EnrollFaceRequest(member_id="m", consent_id="c", model="d",
                                                                  vector=b"\0" * (5 * 1024 * 1024)), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.RpcError) as err:  # under the transport limit, over the field limit
        stubs["crm"].UpsertMember(crm_service_pb2.UpsertMemberRequest(member_id="m", site_id="site-t", name="名" * 100_000),
                                  timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fingerprint(db_path) == before


def test_malformed_bytes_are_rejected(server) -> None:
    with grpc.insecure_channel(server.address) as ch:
        call = ch.unary_unary("/joyedge.api.v1.CRM/GetMember")
        with pytest.raises(grpc.RpcError) as err:
            call(b"\xff\xff\xff\xff", timeout=10)
    assert err.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)


def test_an_expired_deadline_is_deadline_exceeded_and_the_tag_run_writes_nothing(stubs, site, storage, db_path) -> None:
    """GIVEN 20k members with purchases WHEN ComputeTags is called with a 50 ms deadline THEN the
    caller gets DEADLINE_EXCEEDED and no tag or tag run was written (the run checks its deadline
    before committing)."""
    at = now_ms() - DAY_MS
    with storage.transaction("bulk") as conn:
        conn.executemany("INSERT INTO members (member_id, site_id, name, tier, points, tier_keep_points, phone_hash,"
                         " phone_last4, gender, birthday, updated_at_ms, seq) VALUES (?, 'site-t', 'x', '普卡', 0, 0,"
                         " '', '', 'F', '1990-01-01', 0, 0)", [(f"b{i}",) for i in range(20000)])
        conn.executemany("INSERT INTO transactions VALUES (?, ?, 'store-t1', 'b', ?, ?, 1)",
                         [(f"bt{i}", f"b{i % 20000}", 1000 + i, at - i * 1000) for i in range(60000)])
    before = fingerprint(db_path)
    with pytest.raises(grpc.RpcError) as err:
        stubs["crm"].ComputeTags(crm_service_pb2.ComputeTagsRequest(), timeout=0.05)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    server_side_done = stubs["crm"].GetMember(crm_service_pb2.GetMemberRequest(member_id="b0"), timeout=60)
    assert server_side_done.member.member_id == "b0"
    after = fingerprint(db_path)
    assert after["tags"] == before["tags"] == 0 and after["tag_runs"] == 0

"""Marketing over real gRPC: tag expressions, campaigns with limits, the 100-way redeem race,
idempotent redemption, offline reconciliation with compensating events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from api.v1 import crm_pb2, crm_service_pb2, marketing_pb2, sync_pb2
from cloud_stub.errors import InvalidRequestError
from cloud_stub.marketing.expr import TagExpression
from cloud_stub.storage import now_ms
from tests.cloud.helpers import DAY_MS, add_member, buy, fingerprint


def test_tag_expression_matches_and_refuses_anything_but_comparisons() -> None:
    e = TagExpression('rfm == "重要挽留客户" and activity in ["沉默客户", "睡眠客户"]')
    assert e.matches({"rfm": "重要挽留客户", "activity": "睡眠客户"}, {})
    assert not e.matches({"rfm": "重要挽留客户", "activity": "活跃客户"}, {})
    assert not e.matches({"activity": "睡眠客户"}, {})  # missing tag → false
    assert TagExpression("not activity == \"活跃客户\"").matches({}, {})
    assert TagExpression("churn_risk.score >= 0.7 or tier == '金卡'").matches({}, {"churn_risk": 0.7})
    for bad in ("__import__('os').system('x')", "rfm ==", "rfm", "a + 1 == 2", "x == y()", ""):
        with pytest.raises(InvalidRequestError):
            TagExpression(bad)


DAY0 = now_ms() // DAY_MS * DAY_MS


def _coupon_campaign(stubs, cid: str, expression: str, limit: int = 1) -> None:
    now = DAY0
    stubs["marketing"].CreateCampaign(marketing_pb2.Campaign(
        campaign_id=cid, site_id="site-t", name="回流", expression=expression, title="满300减30券",
        kind=crm_pb2.COUPON_KIND_THRESHOLD, value_cents=3000, threshold_cents=30000,
        valid_from_ms=now - DAY_MS, valid_until_ms=now + 30 * DAY_MS, per_member_limit=limit), timeout=10)


@pytest.fixture
def tagged(stubs, site, server):
    """Three members: one lost, one active big spender, one sleeping; tags computed."""
    now = now_ms()
    for mid, days, cents in (("m-lost", 400, 5000), ("m-active", 3, 90000), ("m-sleep", 200, 8000)):
        add_member(stubs, mid)
        buy(stubs, f"{mid}-t1", mid, cents, now - days * DAY_MS)
    stubs["crm"].ComputeTags(crm_service_pb2.ComputeTagsRequest(), timeout=60)
    return stubs


def test_campaign_targets_by_tags_and_respects_the_per_member_limit(tagged, db_path) -> None:
    m = tagged["marketing"]
    _coupon_campaign(tagged, "c-win", 'activity in ["沉默客户", "睡眠客户", "流失客户"]', limit=2)
    dry = m.IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-win", dry_run=True), timeout=10)
    assert (dry.matched, dry.issued) == (2, 2)
    counts = [m.IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-win"), timeout=10) for _ in range(3)]
    assert [(c.issued, c.at_limit) for c in counts] == [(2, 0), (2, 0), (0, 2)]
    prof = tagged["crm"].GetMember(crm_service_pb2.GetMemberRequest(member_id="m-sleep"), timeout=10)
    assert sorted(c.coupon_id for c in prof.coupons) == ["c-win-m-sleep-1", "c-win-m-sleep-2"]
    active = tagged["crm"].GetMember(crm_service_pb2.GetMemberRequest(member_id="m-active"), timeout=10)
    assert not active.coupons
    # Changing a campaign under the same id is refused, creating it again identically is fine.
    _coupon_campaign(tagged, "c-win", 'activity in ["沉默客户", "睡眠客户", "流失客户"]', limit=2)
    with pytest.raises(grpc.RpcError) as err:
        _coupon_campaign(tagged, "c-win", 'rfm == "重要价值客户"', limit=2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_hundred_concurrent_redeems_of_one_coupon_exactly_one_succeeds(tagged, channel) -> None:
    _coupon_campaign(tagged, "c-race", 'activity == "流失客户"')
    tagged["marketing"].IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-race"), timeout=10)
    coupon = "c-race-m-lost-1"

    def redeem(i: int) -> grpc.StatusCode:
        try:
            tagged["marketing"].RedeemCoupon(marketing_pb2.RedeemCouponRequest(
                redemption_id=f"r-{i}", coupon_id=coupon, member_id="m-lost", store_id="store-t1",
                device_id=f"pos-{i % 7}", order_amount_cents=35000), timeout=60)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    with ThreadPoolExecutor(max_workers=100) as pool:
        codes = list(pool.map(redeem, range(100)))
    assert codes.count(grpc.StatusCode.OK) == 1
    assert codes.count(grpc.StatusCode.FAILED_PRECONDITION) == 99
    # The coupon change reaches devices as REDEEMED.
    pulled = sync_pb2_grpc_pull(channel)
    assert pulled[coupon] == crm_pb2.COUPON_STATUS_REDEEMED


def sync_pb2_grpc_pull(channel) -> dict[str, int]:
    from api.v1 import sync_pb2_grpc

    resp = sync_pb2_grpc.SyncStub(channel).Pull(sync_pb2.PullRequest(
        site_id="site-t", cursors=[sync_pb2.Cursor(stream=sync_pb2.STREAM_COUPONS)]), timeout=10)
    return {c.key: c.coupon.status for c in resp.batches[0].changes}


def test_redeem_retry_is_idempotent_and_threshold_scope_are_checked(tagged) -> None:
    m = tagged["marketing"]
    _coupon_campaign(tagged, "c-1", 'activity == "流失客户"')
    m.IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-1"), timeout=10)
    req = marketing_pb2.RedeemCouponRequest(redemption_id="r1", coupon_id="c-1-m-lost-1", member_id="m-lost",
                                            store_id="store-t1", device_id="pos-1", order_amount_cents=29999)
    with pytest.raises(grpc.RpcError) as err:
        m.RedeemCoupon(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "threshold" in err.value.details()
    req.order_amount_cents = 30000
    first = m.RedeemCoupon(req, timeout=10)
    again = m.RedeemCoupon(req, timeout=10)
    assert first == again and first.discount_cents == 3000
    with pytest.raises(grpc.RpcError) as err:
        m.RedeemCoupon(marketing_pb2.RedeemCouponRequest(
            redemption_id="r2", coupon_id="c-1-m-lost-1", member_id="m-lost", store_id="store-t1",
            device_id="pos-2", order_amount_cents=40000), timeout=10)
    assert "already redeemed" in err.value.details() and "r1" in err.value.details()


def test_offline_double_redemption_is_flagged_with_a_compensating_event(tagged, db_path) -> None:
    m = tagged["marketing"]
    _coupon_campaign(tagged, "c-off", 'activity == "流失客户"')
    m.IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-off"), timeout=10)
    cid = "c-off-m-lost-1"
    m.RedeemCoupon(marketing_pb2.RedeemCouponRequest(redemption_id="online-1", coupon_id=cid, member_id="m-lost",
                                                     store_id="store-t1", device_id="pos-1",
                                                     order_amount_cents=50000), timeout=10)
    report = marketing_pb2.ReportOfflineRedemptionsRequest(device_id="pos-9", redemptions=[
        marketing_pb2.OfflineRedemption(redemption_id="off-1", coupon_id=cid, member_id="m-lost", store_id="store-t2",
                                        order_amount_cents=31000, redeemed_at_ms=now_ms() - 3600_000),
        marketing_pb2.OfflineRedemption(redemption_id="off-2", coupon_id="nope", member_id="m-lost",
                                        store_id="store-t2", order_amount_cents=31000, redeemed_at_ms=now_ms()),
    ])
    resp = m.ReportOfflineRedemptions(report, timeout=10)
    first, unknown = resp.results
    assert first.outcome == marketing_pb2.RECONCILE_OUTCOME_CONFLICT
    assert first.compensation.kind == "coupon_double_redemption" and first.compensation.amount_cents == 3000
    assert first.compensation.device_id == "pos-9"
    assert unknown.outcome == marketing_pb2.RECONCILE_OUTCOME_REJECTED
    again = m.ReportOfflineRedemptions(report, timeout=10)  # the sync retried the push
    assert [r.outcome for r in again.results] == [marketing_pb2.RECONCILE_OUTCOME_DUPLICATE] * 2
    assert again.results[0].compensation.event_id == first.compensation.event_id
    assert fingerprint(db_path)["compensations"] == 2


def test_offline_redemption_of_an_unused_coupon_is_accepted(tagged) -> None:
    m = tagged["marketing"]
    _coupon_campaign(tagged, "c-ok", 'activity == "流失客户"')
    m.IssueCampaign(marketing_pb2.IssueCampaignRequest(campaign_id="c-ok"), timeout=10)
    resp = m.ReportOfflineRedemptions(marketing_pb2.ReportOfflineRedemptionsRequest(device_id="pos-9", redemptions=[
        marketing_pb2.OfflineRedemption(redemption_id="off-ok", coupon_id="c-ok-m-lost-1", member_id="m-lost",
                                        store_id="store-t1", order_amount_cents=30000, redeemed_at_ms=now_ms())]),
        timeout=10)
    assert resp.results[0].outcome == marketing_pb2.RECONCILE_OUTCOME_ACCEPTED
    assert not resp.results[0].HasField("compensation")

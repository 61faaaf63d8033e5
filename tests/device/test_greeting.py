"""What the mirror says: masked names, greetings by local time, the member card from the replica."""

from __future__ import annotations

from datetime import datetime

import pytest

from api.v1 import crm_pb2, sync_pb2
from device.greeting import mask_name, member_view, time_greeting, welcome_view
from sync.crypto import TemplateCipher
from sync.replica import Replica


@pytest.mark.parametrize("name,masked", [("王建", "*建"), ("李淑华", "*淑华"), ("欧阳娜娜", "*娜娜"),
                                         ("司马光", "*光"), ("Grace Hopper", "G. *"), ("", "*")])
def test_mask_name(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize("hour,word", [(5, "早上好"), (10, "早上好"), (11, "中午好"), (12, "中午好"),
                                       (13, "下午好"), (17, "下午好"), (18, "晚上好"), (0, "晚上好")])
def test_time_greeting_by_local_hour(hour, word):
    assert time_greeting(datetime(2026, 11, 30, hour, 30)) == word


def _seeded_replica(tmp_path, now_ms):
    rep = Replica(tmp_path / "r.db", TemplateCipher(tmp_path / "id"))
    m = crm_pb2.Member(member_id="M1", name="王建", tier="璀璨卡", points=7865, tier_keep_points=10000)
    rep.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_MEMBERS, next_seq=1,
                                         changes=[sync_pb2.Change(seq=1, key="M1", member=m)]))
    day = 86_400_000
    coupons = [
        crm_pb2.Coupon(coupon_id="C1", member_id="M1", title="20元现金券", status=crm_pb2.COUPON_STATUS_ISSUED,
                       valid_from_ms=now_ms - day, valid_until_ms=now_ms + day, usage_hint="打开小程序卡包出示给收银员"),
        crm_pb2.Coupon(coupon_id="C2", member_id="M1", title="满300减30券", status=crm_pb2.COUPON_STATUS_ISSUED,
                       valid_from_ms=now_ms - day, valid_until_ms=now_ms + day, store_ids=["store-other"]),
        crm_pb2.Coupon(coupon_id="C3", member_id="M1", title="过期券", status=crm_pb2.COUPON_STATUS_ISSUED,
                       valid_from_ms=now_ms - 2 * day, valid_until_ms=now_ms - day),
        crm_pb2.Coupon(coupon_id="C4", member_id="M1", title="已用券", status=crm_pb2.COUPON_STATUS_REDEEMED,
                       valid_from_ms=now_ms - day, valid_until_ms=now_ms + day),
    ]
    rep.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_COUPONS, next_seq=5, changes=[
        sync_pb2.Change(seq=i + 2, key=c.coupon_id, coupon=c) for i, c in enumerate(coupons)]))
    tags = [crm_pb2.Tag(tag_id="T1", member_id="M1", kind="spending_stars", value="4"),
            crm_pb2.Tag(tag_id="T2", member_id="M1", kind="visit_cycle", value="1.2"),
            crm_pb2.Tag(tag_id="T3", member_id="M1", kind="activity", value="活跃客户", valid_until_ms=now_ms - 1)]
    rep.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_TAGS, next_seq=8, changes=[
        sync_pb2.Change(seq=i + 6, key=t.tag_id, tag=t) for i, t in enumerate(tags)]))
    return rep


def test_member_card_shows_only_usable_coupons_of_this_store(tmp_path):
    now = datetime(2026, 11, 30, 15, 0)
    rep = _seeded_replica(tmp_path, int(now.timestamp() * 1000))
    view = member_view(rep, "M1", "store-demo-01", now)
    rep.close()
    assert view["greeting"] == "*建，下午好！"
    assert (view["tier"], view["points"], view["tier_keep_points"]) == ("璀璨卡", 7865, 10000)
    assert view["coupons"] == [{"title": "20元现金券", "hint": "打开小程序卡包出示给收银员"}]
    assert view["stars"] == 4 and view["visit_cycle"] == "1.2 次/月"
    assert "王" not in str(view)


def test_unknown_member_and_welcome_carry_nothing_personal(tmp_path):
    now = datetime(2026, 11, 30, 9, 0)
    rep = _seeded_replica(tmp_path, int(now.timestamp() * 1000))
    assert member_view(rep, "M-gone", "store-demo-01", now) is None
    rep.close()
    view = welcome_view(now)
    assert view["state"] == "welcome" and "早上好" in view["greeting"]
    assert set(view) == {"state", "greeting", "message"}

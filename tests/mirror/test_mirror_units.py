"""The mirror's pure parts: traffic suppression and windows, content rules, QR and plate formats, offline."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from device.app import OFFLINE_AFTER_S, is_offline
from device.errors import DeviceError
from device.mirror import content, traffic
from device.mirror.find_car import mask_plate
from device.mirror.member_qr import parse_legacy_code
from sync.crypto import TemplateCipher
from sync.outbox import Outbox
from sync.replica import Replica

HOUR = traffic.WINDOW_MS


def test_traffic_buckets_under_five_people_never_leave_the_device(tmp_path):
    """GIVEN 7 women 18-60 and 2 men over 60 in one hour, and 1 shopper in the next WHEN the hour is over
    THEN the outbox gets one event with the 7 (and totals) but nothing that counts the 2 men or the lone shopper."""
    replica = Replica(tmp_path / "r.db", TemplateCipher(tmp_path / "id"))
    agg = traffic.TrafficAggregator(Outbox(replica), "store-1")
    t0 = 10 * HOUR
    for i in range(7):
        agg.add(started_ms=t0 + i, ended_ms=t0 + i + 12_000, age_band="18-60", gender="female", orientation="front")
    for i in range(2):
        agg.add(started_ms=t0 + 100 + i, ended_ms=t0 + 100 + i + 90_000, age_band=">60", gender="male",
                orientation="side")
    agg.add(started_ms=t0 + HOUR + 5, ended_ms=t0 + HOUR + 6, age_band="<18", gender="male", orientation="front")
    assert agg.flush_due(t0 + HOUR - 1) == 0  # the hour is not over yet
    assert agg.flush_due(t0 + HOUR) == 1
    events = Outbox(replica).pending()
    assert len(events) == 1 and events[0].WhichOneof("payload") == "traffic"
    counts = dict(events[0].traffic.counts)
    assert events[0].traffic.window_start_ms == t0 and events[0].traffic.window_ms == HOUR
    assert counts == {"shoppers": 9, "age:18-60": 7, "gender:female": 7, "orientation:front": 7,
                      "age_gender:18-60|female": 7, "dwell:10-30s": 7, "dwell_ms_total": 7 * 12_000 + 2 * 90_000}
    assert agg.flush_all() == 1  # the next hour, pushed at shutdown: one shopper, so nothing but an empty window
    assert dict(Outbox(replica).pending()[1].traffic.counts) == {}
    replica.close()


def test_suppress_drops_the_dwell_sum_of_a_small_window():
    assert traffic.suppress(Counter({"shoppers": 4, "dwell_ms_total": 99, "gender:male": 4})) == {}
    assert traffic.dwell_bucket(9_999) == "<10s" and traffic.dwell_bucket(60_000) == ">60s"


def test_content_is_chosen_by_age_band_and_gender_most_specific_first():
    rules = content.DEFAULT_RULES
    assert content.choose(rules, "18-60", "female", 0).id == "women-new-season"
    assert content.choose(rules, "18-60", "male", 0).id == "men-sports"
    assert content.choose(rules, ">60", "female", 0).id == "silver-tuesday"
    assert content.choose(rules, None, None, 0).id == "join-joy"  # attributes unknown: the generic content


def test_site_rule_table_is_validated_and_time_limited(tmp_path):
    path = tmp_path / content.RULES_FILE
    path.write_text(json.dumps({"version": "1", "rules": [
        {"id": "flash", "title": "限时特卖", "body": "今天", "genders": ["female"], "priority": 5,
         "valid_from_ms": 100, "valid_until_ms": 200}]}), encoding="utf-8")
    rules = content.load_rules(path)
    assert content.choose(rules, "18-60", "female", 150).id == "flash"
    assert content.choose(rules, "18-60", "female", 200) is None
    assert content.load_rules(tmp_path / "absent.json") == content.DEFAULT_RULES
    path.write_text(json.dumps({"rules": [{"id": "x", "title": "t", "body": "b", "genders": ["robot"]}]}))
    with pytest.raises(DeviceError, match="rules\\[0\\].*robot"):
        content.load_rules(path)
    path.write_text(json.dumps({"rules": [{"id": "x", "title": "t", "body": "b", "colour": "red"}]}))
    with pytest.raises(DeviceError, match="unknown keys \\['colour'\\]"):
        content.load_rules(path)


def test_member_qr_and_plate_formats():
    assert parse_legacy_code("JOYMEMBER:M-001") == "M-001"
    assert parse_legacy_code("6901234567892") is None
    assert parse_legacy_code("JOYMEMBER:../etc") is None and parse_legacy_code("JOYMEMBER:") is None
    assert mask_plate("沪A12345") == "沪A·***45"


def test_offline_follows_the_daemons_status():
    now = 1_000_000.0
    assert is_offline({}, now)  # the daemon never reported
    assert not is_offline({"state": "online", "last_success": now - 5}, now)
    assert is_offline({"state": "online", "last_success": now - OFFLINE_AFTER_S - 1}, now)  # daemon went quiet
    assert is_offline({"state": "offline", "last_success": now}, now)

"""Tag factory rules at their boundaries (hypothesis), and the whole factory over real gRPC."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api.v1 import crm_service_pb2
from cloud_stub.tags import models, rules
from tests.cloud.helpers import DAY_MS, add_member, buy

AS_OF = 1_780_000_000_000  # a fixed "now" for the rules


def spec_r(days: int) -> str:
    """R as the issue states it: active < 90, silent 90–180, sleeping 180–360, lost > 360."""
    if days < 90:
        return "活跃客户"
    if days < 180:
        return "沉默客户"
    if days <= 360:
        return "睡眠客户"
    return "流失客户"


@settings(max_examples=300, deadline=None)
@given(days=st.integers(0, 2000), within=st.integers(0, DAY_MS - 1))
@example(days=89, within=0)
@example(days=90, within=0)
@example(days=91, within=0)
@example(days=179, within=DAY_MS - 1)
@example(days=180, within=0)
@example(days=181, within=0)
@example(days=359, within=0)
@example(days=360, within=DAY_MS - 1)
@example(days=361, within=0)
def test_r_label_at_every_boundary(days: int, within: int) -> None:
    """GIVEN a last purchase `days` whole days (+ part of a day) before as_of THEN R follows the spec."""
    last = np.array([AS_OF - days * DAY_MS - within])
    d = rules.recency_days(last, AS_OF)
    assert int(d[0]) == days
    assert rules.r_labels(d)[0] == spec_r(days)


@given(n=st.integers(1, 10_000))
@example(n=1)
@example(n=2)
@example(n=3)
@example(n=4)
def test_f_label(n: int) -> None:
    expected = {1: "新客户", 2: "老客户", 3: "成熟客户"}.get(n, "忠诚客户")
    assert rules.f_labels(np.array([n]))[0] == expected


def spec_m(avg: Fraction, population_avg: Fraction) -> str:
    ratio = avg / population_avg
    if ratio < Fraction(1, 2):
        return "低贡献客户"
    if ratio < 1:
        return "中贡献客户"
    if ratio < 2:
        return "中高贡献客户"
    return "高贡献客户"


@settings(max_examples=300, deadline=None)
@given(
    unit=st.integers(1, 10**6), total_count=st.integers(1, 3 * 10**6), n=st.integers(1, 50),
    k=st.sampled_from([Fraction(1, 2), Fraction(1), Fraction(2)]), delta=st.sampled_from([-1, 0, 1]),
)
def test_m_label_exactly_at_half_one_and_two_times_the_average_ticket(unit, total_count, n, k, delta) -> None:
    """GIVEN a population average ticket of 2·unit and a member whose average ticket is exactly
    k × it (k = ½, 1, 2), or one cent of total spend off THEN M is on the documented side."""
    total_spend = 2 * unit * total_count  # A = 2·unit cents exactly
    spend = int(k * 2 * unit * n) + delta
    if spend <= 0:
        return
    got = rules.m_labels(np.array([spend]), np.array([n]), total_spend, total_count)[0]
    assert got == spec_m(Fraction(spend, n), Fraction(total_spend, total_count))
    if delta == 0:
        assert got == {Fraction(1, 2): "中贡献客户", Fraction(1): "中高贡献客户", Fraction(2): "高贡献客户"}[k]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 800), st.integers(1, 40), st.integers(1, 10**7)), min_size=1, max_size=40))
def test_rfm_code_is_high_only_when_strictly_better_than_the_population_mean(rows) -> None:
    days, count, spend = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True))
    codes = rules.rfm_codes(days, count, spend)
    mean_d, mean_n, mean_s = (Fraction(int(a.sum()), len(rows)) for a in (days, count, spend))
    for i, code in enumerate(codes):
        assert code == f"{int(days[i] < mean_d)}{int(count[i] > mean_n)}{int(spend[i] > mean_s)}"
    names = rules.rfm_labels(codes)
    assert set(names) <= set(rules.RFM_SEGMENTS.values())


def test_rfm_tie_with_the_mean_is_low_and_the_eight_names_match_their_codes() -> None:
    same = np.array([10, 10])
    assert list(rules.rfm_codes(same, same, same)) == ["000", "000"]
    assert rules.RFM_SEGMENTS == {
        "111": "重要价值客户", "011": "重要保持客户", "101": "重要发展客户", "001": "重要挽留客户",
        "110": "一般价值客户", "010": "一般保持客户", "100": "一般发展客户", "000": "一般挽留客户",
    }


@given(year=st.integers(1930, 2025))
def test_generation_buckets(year: int) -> None:
    got = rules.generation(f"{year}-06-15")
    if 1960 <= year < 2020:
        assert got == f"{year % 100 // 10 * 10:02d}后"
    else:
        assert got in ("60前", "20后")


def test_zodiac_edges_and_life_stage() -> None:
    assert rules.zodiac("1990-03-20") == "双鱼座" and rules.zodiac("1990-03-21") == "白羊座"
    assert rules.zodiac("1990-12-22") == "摩羯座" and rules.zodiac("1990-01-19") == "摩羯座"
    assert rules.zodiac("") == "" and rules.generation("") == ""
    assert [rules.life_stage(a) for a in (17, 18, 29, 30, 44, 45, 59, 60, None)] == [
        "少年", "青年", "青年", "成家", "成家", "中年", "中年", "银发", ""]


@given(d=st.integers(0, 1000), n=st.integers(1, 20))
def test_lifecycle_follows_r_and_f(d: int, n: int) -> None:
    got = rules.lifecycle_labels(np.array([d]), np.array([n]))[0]
    if d > 360:
        assert got == "流失期"
    elif d >= 90:
        assert got == "衰退期"
    else:
        assert got == {1: "引入期", 2: "成长期", 3: "成长期"}.get(n, "成熟期")


def test_churn_is_zero_until_overdue_and_kmeans_picks_separated_clusters() -> None:
    gap = np.array([30.0, 30.0, 30.0])
    p = models.churn_probability(np.array([10, 30, 60]), gap)
    assert p[0] == 0 and p[1] == 0 and 0.6 < p[2] < 0.65
    rng = np.random.default_rng(1)
    days = np.concatenate([rng.integers(1, 5, 300), rng.integers(400, 420, 300)])
    count = np.concatenate([rng.integers(20, 25, 300), np.ones(300, dtype=int)])
    spend = count * 10000
    names, k, sil = models.segments(days, count, spend, seed=3)
    assert k == 2 and sil > 0.8
    assert set(names[:300]) == {"C1"} and set(names[300:]) == {"C2"}


def test_compute_tags_over_grpc_labels_members_at_89_90_91_days(stubs, site, server) -> None:
    """GIVEN members whose only purchase was 89, 90, 91 and 361 days ago WHEN ComputeTags runs over
    gRPC THEN GetMember shows the activity tags of the spec, static tags never expire, dynamic ones
    expire 90 days after computation."""
    as_of = AS_OF
    for d in (89, 90, 91, 361):
        add_member(stubs, f"m{d}")
        buy(stubs, f"t{d}", f"m{d}", 10000, as_of - d * DAY_MS - 1000)
    add_member(stubs, "m-none")
    resp = stubs["crm"].ComputeTags(crm_service_pb2.ComputeTagsRequest(as_of_ms=as_of), timeout=60)
    assert resp.members == 5 and resp.transactions == 4
    want = {89: "活跃客户", 90: "沉默客户", 91: "沉默客户", 361: "流失客户"}
    for d, label in want.items():
        prof = stubs["crm"].GetMember(crm_service_pb2.GetMemberRequest(member_id=f"m{d}"), timeout=10)
        tags = {t.kind: t for t in prof.tags}
        assert tags["activity"].value == label
        assert tags["frequency"].value == "新客户"
        assert tags["monetary"].value == "中高贡献客户"  # everyone at exactly 1× the average ticket
        assert tags["gender"].valid_until_ms == 0 and tags["zodiac"].value == "金牛座"
        assert tags["rfm"].valid_until_ms - tags["rfm"].computed_at_ms == 90 * DAY_MS
    none = stubs["crm"].GetMember(crm_service_pb2.GetMemberRequest(member_id="m-none"), timeout=10)
    assert {t.kind: t.value for t in none.tags}["lifecycle"] == "引入期"
    assert "activity" not in {t.kind for t in none.tags}

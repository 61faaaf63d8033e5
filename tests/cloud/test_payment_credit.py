"""Payment (idempotent retries, declines, limits, capture/refund), JOY-CRED and the device registry,
over real gRPC on loopback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from api.v1 import credit_pb2, crm_service_pb2, payment_pb2, registry_pb2
from cloud_stub import credit, payment
from cloud_stub.storage import now_ms
from tests.cloud.helpers import DAY_MS, add_member, buy, fingerprint


@pytest.fixture
def pos(stubs, site, server) -> str:
    """A claimed π-POS in store-t1 and a member."""
    reg = stubs["registry"]
    token = reg.CreateClaimToken(registry_pb2.CreateClaimTokenRequest(site_id=site, store_id="store-t1",
                                                                     profile="pos-flagship"), timeout=10)
    reg.ClaimDevice(registry_pb2.ClaimDeviceRequest(token=token.token, device_id="pos-1"), timeout=10)
    add_member(stubs, "m1")
    return "pos-1"


def auth(key: str, amount: int = 12800, score: float = 0.97, live: bool = True, phone: bool = False,
         member: str = "m1") -> payment_pb2.AuthorizeRequest:
    return payment_pb2.AuthorizeRequest(
        idempotency_key=key, member_id=member, device_id="pos-1", store_id="store-t1", amount_cents=amount,
        evidence=payment_pb2.PaymentEvidence(match_score=score, liveness_passed=live, liveness_method="depth",
                                             phone_last4_confirmed=phone))


def test_authorize_retries_give_one_payment_even_concurrently(stubs, pos, db_path) -> None:
    pay = stubs["payment"]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: pay.Authorize(auth("k-1"), timeout=30), range(20)))
    assert len({r.payment_id for r in results}) == 1 and results[0].approved
    assert fingerprint(db_path)["payments"] == 1
    with pytest.raises(grpc.RpcError) as err:
        pay.Authorize(auth("k-1", amount=99), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "idempotency_key" in err.value.details()
    pid = results[0].payment_id
    cap = [pay.Capture(payment_pb2.CaptureRequest(payment_id=pid), timeout=10) for _ in range(3)]
    assert all(c.status == payment_pb2.PAYMENT_STATUS_CAPTURED and c.captured_cents == 12800 for c in cap)
    refunds = [pay.Refund(payment_pb2.RefundRequest(refund_id="rf-1", payment_id=pid, amount_cents=2800), timeout=10)
               for _ in range(3)]
    assert refunds[-1].refunded_cents == 2800
    with pytest.raises(grpc.RpcError) as err:
        pay.Refund(payment_pb2.RefundRequest(refund_id="rf-2", payment_id=pid, amount_cents=10001), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    last = pay.Refund(payment_pb2.RefundRequest(refund_id="rf-3", payment_id=pid, amount_cents=10000), timeout=10)
    assert last.status == payment_pb2.PAYMENT_STATUS_REFUNDED
    txns = stubs["crm"].ListTransactions(crm_service_pb2.ListTransactionsRequest(member_id="m1"), timeout=10)
    assert sorted(t.kind for t in txns.transactions) == [1, 2, 2]


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"live": False}, "liveness_failed"),
    ({"score": 0.79}, "match_too_weak"),
    ({"score": 0.85}, "needs_phone_confirmation"),
    ({"amount": payment.PER_PAYMENT_LIMIT_CENTS + 1}, "amount_over_limit"),
])
def test_declines_carry_a_code_and_are_idempotent(stubs, pos, kwargs, code) -> None:
    r1 = stubs["payment"].Authorize(auth("k-d", **kwargs), timeout=10)
    r2 = stubs["payment"].Authorize(auth("k-d", **kwargs), timeout=10)
    assert not r1.approved and r1.decline_code == code and r1.decline_reason and r1 == r2


def test_confirmed_phone_lets_a_middling_match_pay_and_the_member_daily_limit_holds(stubs, pos) -> None:
    assert stubs["payment"].Authorize(auth("k-p", score=0.85, phone=True), timeout=10).approved
    n = payment.MEMBER_DAILY_LIMIT_CENTS // payment.PER_PAYMENT_LIMIT_CENTS
    for i in range(n - 1):
        assert stubs["payment"].Authorize(auth(f"k-l{i}", amount=payment.PER_PAYMENT_LIMIT_CENTS), timeout=10).approved
    over = stubs["payment"].Authorize(auth("k-over", amount=payment.PER_PAYMENT_LIMIT_CENTS), timeout=10)
    assert over.decline_code == "member_daily_limit"


def test_unknown_device_or_member_is_not_found_and_writes_nothing(stubs, pos, db_path) -> None:
    before = fingerprint(db_path)
    for req in (auth("k-x", member="ghost"), payment_pb2.AuthorizeRequest(
            idempotency_key="k-y", member_id="m1", device_id="pos-ghost", store_id="store-t1", amount_cents=1)):
        with pytest.raises(grpc.RpcError) as err:
            stubs["payment"].Authorize(req, timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert fingerprint(db_path) == before


def test_credit_score_grade_privileges_and_offline_limit(stubs, pos) -> None:
    now = now_ms()
    new = stubs["credit"].GetCredit(credit_pb2.GetCreditRequest(member_id="m1"), timeout=10)
    assert new.grade == credit.grade_for(new.score) and new.score < 700
    for i in range(30):
        buy(stubs, f"t{i}", "m1", 150000, now - (i * 12 + 1) * DAY_MS)
    for i in range(5):
        stubs["credit"].RecordCreditEvent(credit_pb2.CreditEvent(
            event_id=f"e{i}", member_id="m1", kind=credit_pb2.CREDIT_EVENT_KIND_ON_TIME, amount_cents=100,
            at_ms=now), timeout=10)
    good = stubs["credit"].GetCredit(credit_pb2.GetCreditRequest(member_id="m1"), timeout=10)
    assert good.grade == "AA" and good.score >= 800
    assert list(good.privileges) == credit.ALL_PRIVILEGES and good.offline_limit_cents == 200_000
    assert {f.name for f in good.factors} == set(credit.WEIGHTS)
    for i in range(2):
        stubs["credit"].RecordCreditEvent(credit_pb2.CreditEvent(
            event_id=f"d{i}", member_id="m1", kind=credit_pb2.CREDIT_EVENT_KIND_DEFAULT, amount_cents=100,
            at_ms=now), timeout=10)
    bad = stubs["credit"].GetCredit(credit_pb2.GetCreditRequest(member_id="m1"), timeout=10)
    assert bad.score < good.score and "金融服务准入" not in bad.privileges


def test_claim_token_is_single_use_and_heartbeat_updates_the_device(stubs, site, server) -> None:
    reg = stubs["registry"]
    tok = reg.CreateClaimToken(registry_pb2.CreateClaimTokenRequest(site_id=site, store_id="store-t2",
                                                                   profile="mirror"), timeout=10)
    dev = reg.ClaimDevice(registry_pb2.ClaimDeviceRequest(token=tok.token, device_id="mirror-1", name="试衣镜"), timeout=10)
    assert (dev.site_id, dev.store_id, dev.profile) == (site, "store-t2", "mirror")
    assert reg.ClaimDevice(registry_pb2.ClaimDeviceRequest(token=tok.token, device_id="mirror-1"), timeout=10) == dev
    with pytest.raises(grpc.RpcError) as err:
        reg.ClaimDevice(registry_pb2.ClaimDeviceRequest(token=tok.token, device_id="mirror-2"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        reg.ClaimDevice(registry_pb2.ClaimDeviceRequest(token="forged", device_id="mirror-3"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    hb = reg.Heartbeat(registry_pb2.HeartbeatRequest(device_id="mirror-1", software_version="0.1.0"), timeout=10)
    assert hb.software_version == "0.1.0"
    assert [d.device_id for d in reg.ListDevices(registry_pb2.ListDevicesRequest(site_id=site), timeout=10).devices] == ["mirror-1"]
    stores = reg.ListStores(registry_pb2.ListStoresRequest(site_id=site), timeout=10).stores
    assert {s.store_id: s.brand for s in stores} == {"store-t1": "优衣库", "store-t2": "星巴克"}

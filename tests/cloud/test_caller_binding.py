"""Caller binding over real mTLS: a device certificate acts only for its own device id, its site's
stores, members and payments (auth.DEVICE_BINDINGS). A real CA in tmp_path, the real cloud serving
mTLS + enrollment on loopback, devices enrolled with claim tokens (sync.identity.enroll), operator and
technician certificates signed by the same CA. Every refused call must leave the database unchanged."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from api.v1 import (
    credit_pb2,
    credit_pb2_grpc,
    crm_pb2,
    crm_service_pb2,
    crm_service_pb2_grpc,
    fusion_pb2,
    fusion_pb2_grpc,
    marketing_pb2,
    marketing_pb2_grpc,
    payment_pb2,
    payment_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    sync_pb2,
    sync_pb2_grpc,
)
from cloud_stub import ca, payment, registry
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from sync.identity import DeviceIdentity, build_csr, enroll

T = 5.0
DAY_MS = 24 * 3600 * 1000
DENIED = grpc.StatusCode.PERMISSION_DENIED


@dataclass
class World:
    """GIVEN sites A and B (stores a-s1, a-s2, b-s1; members a-m1, a-m2, b-m1 with consents and
    coupons), devices dev-a and dev-a2 (site A) and dev-b (site B), and a captured payment at B."""

    db: Path
    storage: SqliteStorage
    cloud: CloudServer
    ca_dir: Path
    a: DeviceIdentity
    b_payment: str

    def channel(self, creds: grpc.ChannelCredentials) -> grpc.Channel:
        return grpc.secure_channel(self.cloud.address, creds)

    def dump(self) -> list[str]:
        """Every row of the cloud database, to prove a refused call wrote nothing."""
        with sqlite3.connect(self.db) as conn:
            return list(conn.iterdump())


def _creds(ca_dir: Path, key: Any, cert: Any) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=(ca_dir / "ca.pem").read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM))


def person_creds(w: World, role: str, **ids: str) -> grpc.ChannelCredentials:
    """Credentials of an operator/technician certificate issued by the cloud's CA (and recorded)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.CertificateAuthority(w.ca_dir).sign_csr(build_csr(key), role=role, **ids)
    with w.storage.transaction("record") as conn:
        ca.record_certificate(conn, cert)
    return _creds(w.ca_dir, key, cert)


def _device(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path, name: str,
            site: str) -> DeviceIdentity:
    token = registry.create_claim_token(storage, site_id=site, store_id=f"{site}-s1", profile="pos-flagship")
    return enroll(tmp_path / name, f"127.0.0.1:{cloud.enroll_port}", token["token"],
                  ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id=name)


def seed(storage: SqliteStorage) -> None:
    now = int(time.time() * 1000)
    for site in ("a", "b"):
        storage.upsert_site(site, f"site {site}")
        storage.upsert_store(f"{site}-s1", site, "store 1", "优衣库")
    storage.upsert_store("a-s2", "a", "store 2", "星巴克")
    for mid, site in (("a-m1", "a"), ("a-m2", "a"), ("b-m1", "b")):
        storage.upsert_member(member_id=mid, site_id=site, name="王建", points=100)
        storage.add_consent(member_id=mid, device_id="seed", text_version="v1", consent_id=f"{mid}-c")
        storage.upsert_coupon(coupon_id=f"{mid}-cp", member_id=mid, title="10元券", kind=crm_pb2.COUPON_KIND_CASH,
                              value_cents=1000, valid_from_ms=now - DAY_MS, valid_until_ms=now + DAY_MS)


B_OFFLINE_SALE = "b-offline-sale-1"
A2_COMPENSATION = "7d3f0a52-93c1-4c0e-9d55-2b1f5e0c9a01"  # issued to dev-a2 (same site as dev-a)
A_COMPENSATION = "0c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"  # issued to dev-a


def _evidence() -> payment_pb2.PaymentEvidence:
    return payment_pb2.PaymentEvidence(match_score=0.97, liveness_passed=True, liveness_method="depth")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    ca_dir = ca.init_ca(tmp_path / "ca").dir
    db = tmp_path / "cloud.db"
    storage = SqliteStorage(db)
    seed(storage)
    with start_server(db, host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as cloud:
        a = _device(tmp_path, cloud, storage, ca_dir, "dev-a", "a")
        _device(tmp_path, cloud, storage, ca_dir, "dev-a2", "a")
        _device(tmp_path, cloud, storage, ca_dir, "dev-b", "b")
        paid = payment.authorize(storage, {
            "idempotency_key": "k-b", "member_id": "b-m1", "device_id": "dev-b", "store_id": "b-s1",
            "amount_cents": 5000, "evidence": {"match_score": 0.97, "liveness_passed": True,
                                               "liveness_method": "depth", "phone_last4_confirmed": False}})
        payment.capture(storage, paid["payment_id"])
        # A sale dev-b took offline: the cloud knows it only as the purchase its payment event booked.
        with storage.transaction("offline sale of site b") as conn:
            conn.execute("INSERT INTO transactions (txn_id, member_id, store_id, brand, amount_cents, at_ms, kind)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", (B_OFFLINE_SALE, "b-m1", "b-s1", "优衣库", 5000,
                                                           int(time.time() * 1000),
                                                           crm_service_pb2.TRANSACTION_KIND_PURCHASE))
        with storage.transaction("flagged sales of dev-a2 and dev-a") as conn:  # double redemptions answered
            for comp_id, dev in ((A2_COMPENSATION, "dev-a2"), (A_COMPENSATION, "dev-a")):
                conn.execute("INSERT INTO compensations (event_id, kind, device_id, coupon_id, redemption_id, member_id,"
                             " amount_cents, message, created_at_ms) VALUES (?, 'coupon_double_redemption', ?,"
                             " 'a-m1-cp', ?, 'a-m1', 1000, 'double', ?)", (comp_id, dev, f"red-{dev}",
                                                                          int(time.time() * 1000)))
        yield World(db, storage, cloud, ca_dir, a, paid["payment_id"])


# --- what device dev-a (site a, store a-s1) tries --------------------------------------------------

def _pay(ch: grpc.Channel) -> payment_pb2_grpc.PaymentStub:
    return payment_pb2_grpc.PaymentStub(ch)


def _authorize(**kw: str) -> Callable[[grpc.Channel, World], Any]:
    fields = {"idempotency_key": "k-a", "member_id": "a-m1", "device_id": "dev-a", "store_id": "a-s1", **kw}
    return lambda ch, w: _pay(ch).Authorize(payment_pb2.AuthorizeRequest(
        amount_cents=1000, evidence=_evidence(), **fields), timeout=T)


def _redeem(**kw: str) -> Callable[[grpc.Channel, World], Any]:
    fields = {"redemption_id": "r-1", "coupon_id": "a-m1-cp", "member_id": "a-m1", "device_id": "dev-a",
              "store_id": "a-s1", **kw}
    return lambda ch, w: marketing_pb2_grpc.MarketingStub(ch).RedeemCoupon(
        marketing_pb2.RedeemCouponRequest(order_amount_cents=5000, **fields), timeout=T)


def _offline(device_id: str = "dev-a", **kw: str) -> Callable[[grpc.Channel, World], Any]:
    item = {"redemption_id": "r-off", "coupon_id": "a-m1-cp", "member_id": "a-m1", "store_id": "a-s1", **kw}
    return lambda ch, w: marketing_pb2_grpc.MarketingStub(ch).ReportOfflineRedemptions(
        marketing_pb2.ReportOfflineRedemptionsRequest(device_id=device_id, redemptions=[
            marketing_pb2.OfflineRedemption(order_amount_cents=5000, redeemed_at_ms=int(time.time() * 1000), **item)]),
        timeout=T)


def _crm(ch: grpc.Channel) -> crm_service_pb2_grpc.CRMStub:
    return crm_service_pb2_grpc.CRMStub(ch)


def _consent(member: str = "a-m1", device: str = "dev-a") -> Callable[[grpc.Channel, World], Any]:
    return lambda ch, w: _crm(ch).RecordConsent(crm_service_pb2.RecordConsentRequest(
        consent_id="c-new", member_id=member, device_id=device, text_version="v1"), timeout=T)


def _enroll_face(member: str = "a-m1") -> Callable[[grpc.Channel, World], Any]:
    return lambda ch, w: _crm(ch).EnrollFace(crm_service_pb2.EnrollFaceRequest(
        member_id=member, consent_id=f"{member}-c", model="dlib", vector=b"\0" * 512, template_id="t-new"), timeout=T)


def _reg(ch: grpc.Channel) -> registry_pb2_grpc.DeviceRegistryStub:
    return registry_pb2_grpc.DeviceRegistryStub(ch)


def _push(device_id: str = "", site_id: str = "", store_id: str = "") -> Callable[[grpc.Channel, World], Any]:
    event = sync_pb2.DeviceEvent(event_id="9b2d4c43-5f6e-4a53-8a7c-0d6c1b2a3e4f", stream="points", stream_seq=1,
                                 occurred_at_ms=int(time.time() * 1000),
                                 points=sync_pb2.PointsEvent(member_id="a-m1", delta=5, reason="test"))
    return lambda ch, w: sync_pb2_grpc.SyncStub(ch).Push(sync_pb2.PushRequest(
        device_id=device_id, site_id=site_id, store_id=store_id, events=[event],
        device_time_ms=int(time.time() * 1000)), timeout=T)


REFUSED: dict[str, Callable[[grpc.Channel, World], Any]] = {
    "Authorize as a device of site B": _authorize(device_id="dev-b", store_id="b-s1"),
    "Authorize as another device of its site": _authorize(device_id="dev-a2"),
    "Authorize in a store of site B": _authorize(store_id="b-s1"),
    "Authorize in an unknown store": _authorize(store_id="nowhere"),
    "Authorize for a member of site B": _authorize(member_id="b-m1"),
    "Authorize for an unknown member": _authorize(member_id="ghost"),
    "Capture a payment of site B": lambda ch, w: _pay(ch).Capture(
        payment_pb2.CaptureRequest(payment_id=w.b_payment), timeout=T),
    "Refund a payment of site B": lambda ch, w: _pay(ch).Refund(
        payment_pb2.RefundRequest(refund_id="rf-1", payment_id=w.b_payment, amount_cents=100), timeout=T),
    "Refund an offline sale of site B": lambda ch, w: _pay(ch).Refund(
        payment_pb2.RefundRequest(refund_id="rf-2", payment_id=B_OFFLINE_SALE, amount_cents=100), timeout=T),
    "GetPayment of site B": lambda ch, w: _pay(ch).GetPayment(
        payment_pb2.GetPaymentRequest(payment_id=w.b_payment), timeout=T),
    "RedeemCoupon as another device": _redeem(device_id="dev-b"),
    "RedeemCoupon in a store of site B": _redeem(store_id="b-s1"),
    "RedeemCoupon of a member of site B": _redeem(member_id="b-m1", coupon_id="b-m1-cp"),
    "ReportOfflineRedemptions as another device": _offline(device_id="dev-a2"),
    "ReportOfflineRedemptions in a store of site B": _offline(store_id="b-s1"),
    "ReportOfflineRedemptions of a member of site B": _offline(member_id="b-m1", coupon_id="b-m1-cp"),
    "GetCredit of a member of site B": lambda ch, w: credit_pb2_grpc.CreditStub(ch).GetCredit(
        credit_pb2.GetCreditRequest(member_id="b-m1"), timeout=T),
    "GetMember of site B": lambda ch, w: _crm(ch).GetMember(
        crm_service_pb2.GetMemberRequest(member_id="b-m1"), timeout=T),
    "RecordConsent for a member of site B": _consent(member="b-m1"),
    "RecordConsent as another device": _consent(device="dev-a2"),
    "EnrollFace onto a member of site B": _enroll_face("b-m1"),
    "WithdrawConsent of a member of site B": lambda ch, w: _crm(ch).WithdrawConsent(
        crm_service_pb2.WithdrawConsentRequest(member_id="b-m1"), timeout=T),
    "Heartbeat as a device of site B": lambda ch, w: _reg(ch).Heartbeat(
        registry_pb2.HeartbeatRequest(device_id="dev-b", software_version="x"), timeout=T),
    "Heartbeat as another device of its site": lambda ch, w: _reg(ch).Heartbeat(
        registry_pb2.HeartbeatRequest(device_id="dev-a2", software_version="x"), timeout=T),
    "GetDevice of another device": lambda ch, w: _reg(ch).GetDevice(
        registry_pb2.GetDeviceRequest(device_id="dev-b"), timeout=T),
    "Push as another device": _push(device_id="dev-a2"),
    "Push into a store of site B": _push(store_id="b-s1"),
    # Not granted to devices at all (ROLE_METHODS): refused whatever they name.
    "RecordTransaction": lambda ch, w: _crm(ch).RecordTransaction(crm_service_pb2.Transaction(
        txn_id="x1", member_id="a-m1", store_id="a-s1", amount_cents=100), timeout=T),
    "AddPoints": lambda ch, w: _crm(ch).AddPoints(crm_service_pb2.AddPointsRequest(
        entry_id="e1", member_id="a-m1", delta=1000, reason="free"), timeout=T),
    "ListTransactions": lambda ch, w: _crm(ch).ListTransactions(
        crm_service_pb2.ListTransactionsRequest(member_id="b-m1"), timeout=T),
    "RecordCreditEvent": lambda ch, w: credit_pb2_grpc.CreditStub(ch).RecordCreditEvent(credit_pb2.CreditEvent(
        event_id="ce1", member_id="a-m1", kind=credit_pb2.CREDIT_EVENT_KIND_ON_TIME, amount_cents=1), timeout=T),
    "Fusion Link": lambda ch, w: fusion_pb2_grpc.FusionStub(ch).Link(fusion_pb2.LinkedIdentity(
        id_type=fusion_pb2.ID_TYPE_PHONE, id_value="13800000000", member_id="b-m1"), timeout=T),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_device_acting_for_someone_else_is_refused_and_writes_nothing(world: World, case: str) -> None:
    before = world.dump()
    with world.channel(world.a.channel_credentials()) as ch, pytest.raises(grpc.RpcError) as info:
        REFUSED[case](ch, world)
    assert info.value.code() == DENIED, info.value.details()
    assert world.dump() == before


def _event(stream: str, **payload: Any) -> sync_pb2.DeviceEvent:
    ev = sync_pb2.DeviceEvent(event_id=str(uuid.uuid4()), stream=stream, stream_seq=1,
                              occurred_at_ms=int(time.time() * 1000))
    ((kind, msg),) = payload.items()
    getattr(ev, kind).CopyFrom(msg)
    return ev


def _close(compensation_id: str) -> sync_pb2.DeviceEvent:
    return _event("reconcile", reconciliation=sync_pb2.ReconciliationEvent(
        compensation_id=compensation_id, sale_id="s", state="collected", resolved_by="cashier",
        resolved_at_ms=int(time.time() * 1000)))


# Events inside an allowed Push that act for what is not the device's own: each is REJECTED with the
# reason (the device quarantines it), the rest of the push goes on, and nothing but the ack is recorded.
REJECTED_EVENTS: dict[str, tuple[Callable[[], sync_pb2.DeviceEvent], str]] = {
    "Points for a member of site B": (lambda: _event("points", points=sync_pb2.PointsEvent(
        member_id="b-m1", delta=5, reason="test")), "is not a member of site 'a'"),
    "Close another device's compensation": (lambda: _close(A2_COMPENSATION),
                                            f"may not act on compensation {A2_COMPENSATION!r}"),
    "Close a compensation never issued": (lambda: _close(str(uuid.uuid4())), "not a compensation issued to it"),
}


def _dump_but_acks(w: World) -> list[str]:
    return [line for line in w.dump() if not line.startswith('INSERT INTO "device_events"')]


@pytest.mark.parametrize("case", list(REJECTED_EVENTS))
def test_pushed_event_acting_for_someone_else_is_rejected_and_writes_nothing(world: World, case: str) -> None:
    make, reason = REJECTED_EVENTS[case]
    before = _dump_but_acks(world)
    event = make()
    with world.channel(world.a.channel_credentials()) as ch:
        out = sync_pb2_grpc.SyncStub(ch).Push(sync_pb2.PushRequest(events=[event],
                                                                   device_time_ms=int(time.time() * 1000)), timeout=T)
    assert [(a.event_id, a.status) for a in out.acks] == [(event.event_id, sync_pb2.ACK_STATUS_REJECTED)]
    assert reason in out.acks[0].reason, out.acks[0].reason
    assert _dump_but_acks(world) == before
    with sqlite3.connect(world.db) as conn:
        assert conn.execute("SELECT device_id, status FROM device_events WHERE event_id = ?",
                            (event.event_id,)).fetchall() == [("dev-a", sync_pb2.ACK_STATUS_REJECTED)]


def test_device_closes_its_own_compensation_once(world: World) -> None:
    first, second = _close(A_COMPENSATION), _close(A_COMPENSATION)
    second.stream_seq = 2
    with world.channel(world.a.channel_credentials()) as ch:
        out = sync_pb2_grpc.SyncStub(ch).Push(sync_pb2.PushRequest(events=[first, second],
                                                                   device_time_ms=int(time.time() * 1000)), timeout=T)
    assert [a.status for a in out.acks] == [sync_pb2.ACK_STATUS_ACCEPTED, sync_pb2.ACK_STATUS_ACCEPTED]
    with sqlite3.connect(world.db) as conn:
        assert conn.execute("SELECT compensation_id, note FROM reconcile_closures").fetchall() == [
            (A_COMPENSATION, "已在收银台补收 · collected at counter dev-a (cashier)")]


def test_pull_answers_closures_of_the_devices_own_compensations_only(world: World) -> None:
    from cloud_stub import cli_reconcile

    for comp_id in (A2_COMPENSATION, A_COMPENSATION):
        cli_reconcile.close(world.storage, comp_id, f"waived {comp_id[:4]}")
    with world.channel(world.a.channel_credentials()) as ch:
        out = sync_pb2_grpc.SyncStub(ch).Pull(sync_pb2.PullRequest(
            open_compensation_ids=[A2_COMPENSATION, A_COMPENSATION, "never-issued"]), timeout=T)
        assert [(c.compensation_id, c.note) for c in out.closures] == [(A_COMPENSATION, "waived 0c1e")]
        with pytest.raises(grpc.RpcError) as info:  # a list no honest device sends
            sync_pb2_grpc.SyncStub(ch).Pull(sync_pb2.PullRequest(
                open_compensation_ids=[str(i) for i in range(cli_reconcile.MAX_ASKED + 1)]), timeout=T)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_legitimate_device_calls_succeed_and_ids_are_filled_from_the_certificate(world: World) -> None:
    with world.channel(world.a.channel_credentials()) as ch:
        # Empty device_id/store_id are filled from the certificate; another store of its site is fine.
        ok = _authorize(device_id="", store_id="")(ch, world)
        assert ok.approved and ok.device_id == "dev-a"
        other_store = _authorize(idempotency_key="k-a2", store_id="a-s2")(ch, world)
        assert other_store.approved
        assert _pay(ch).Capture(payment_pb2.CaptureRequest(payment_id=ok.payment_id), timeout=T).captured_cents == 1000
        assert _pay(ch).Refund(payment_pb2.RefundRequest(refund_id="rf-a", payment_id=ok.payment_id,
                                                          amount_cents=400), timeout=T).refunded_cents == 400
        assert _pay(ch).GetPayment(payment_pb2.GetPaymentRequest(payment_id=ok.payment_id), timeout=T).member_id == "a-m1"
        with pytest.raises(grpc.RpcError) as info:  # unknown payment: the handler's answer
            _pay(ch).GetPayment(payment_pb2.GetPaymentRequest(payment_id="pay-none"), timeout=T)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert _redeem(device_id="")(ch, world).discount_cents == 1000
        out = _offline(coupon_id="a-m2-cp", member_id="a-m2", device_id="")(ch, world)
        assert [r.redemption_id for r in out.results] == ["r-off"]
        assert credit_pb2_grpc.CreditStub(ch).GetCredit(credit_pb2.GetCreditRequest(member_id="a-m1"), timeout=T).grade
        assert _crm(ch).GetMember(crm_service_pb2.GetMemberRequest(member_id="a-m1"), timeout=T).member.member_id == "a-m1"
        assert _consent(device="")(ch, world).device_id == "dev-a"
        assert _enroll_face("a-m2")(ch, world).template_id == "t-new"
        assert _crm(ch).WithdrawConsent(crm_service_pb2.WithdrawConsentRequest(member_id="a-m2"), timeout=T)
        beat = _reg(ch).Heartbeat(registry_pb2.HeartbeatRequest(software_version="1.2.3"), timeout=T)
        assert (beat.device_id, beat.software_version) == ("dev-a", "1.2.3")
        assert _push()(ch, world).acks[0].status == sync_pb2.ACK_STATUS_ACCEPTED
    with sqlite3.connect(world.db) as conn:
        assert conn.execute("SELECT device_id, store_id FROM payments WHERE idempotency_key = 'k-a'").fetchone() == (
            "dev-a", "a-s1")
        assert conn.execute("SELECT device_id FROM redemptions WHERE redemption_id = 'r-1'").fetchone() == ("dev-a",)
        assert conn.execute("SELECT device_id FROM consents WHERE consent_id = 'c-new'").fetchone() == ("dev-a",)


def test_operator_keeps_full_access_and_technician_only_its_grant(world: World) -> None:
    with world.channel(person_creds(world, "operator", name="ops")) as ch:
        # An operator may act for any device, store and member.
        assert _authorize(idempotency_key="k-op", device_id="dev-b", store_id="b-s1", member_id="b-m1")(ch, world).approved
        assert _pay(ch).GetPayment(payment_pb2.GetPaymentRequest(payment_id=world.b_payment), timeout=T).member_id == "b-m1"
        assert _crm(ch).GetMember(crm_service_pb2.GetMemberRequest(member_id="b-m1"), timeout=T).member.site_id == "b"
    with world.channel(person_creds(world, "technician", site_id="a", name="li")) as ch:
        assert _reg(ch).GetDevice(registry_pb2.GetDeviceRequest(device_id="dev-a2"), timeout=T).site_id == "a"
        before = world.dump()
        with pytest.raises(grpc.RpcError) as info:
            _authorize(idempotency_key="k-tech")(ch, world)
        assert info.value.code() == DENIED and world.dump() == before


def test_insecure_loopback_server_keeps_dev_mode(tmp_path: Path) -> None:
    """--insecure on loopback: no certificates, so nothing to bind (as before)."""
    storage = SqliteStorage(tmp_path / "dev.db")
    seed(storage)
    with start_server(tmp_path / "dev.db", port=0, storage=storage) as srv, grpc.insecure_channel(srv.address) as ch:
        assert _crm(ch).GetMember(crm_service_pb2.GetMemberRequest(member_id="b-m1"), timeout=T).member.site_id == "b"


def _services() -> dict[str, Any]:
    """Every gRPC method of api/v1 by full name → its descriptor."""
    import importlib
    import pkgutil

    import api.v1

    out: dict[str, Any] = {}
    for mod in pkgutil.iter_modules(api.v1.__path__):
        if mod.name.endswith("_pb2"):
            for svc in importlib.import_module(f"api.v1.{mod.name}").DESCRIPTOR.services_by_name.values():
                out.update({f"/{svc.full_name}/{m.name}": m for m in svc.methods})
    return out


def test_every_device_method_has_a_binding_naming_real_fields() -> None:
    """Fail closed: whatever ROLE_METHODS lets a device reach is in DEVICE_BINDINGS (else refused),
    and every bound field exists on the request message (a typo would bind nothing)."""
    from cloud_stub import auth

    methods = _services()
    reachable = {m for m in methods if auth._allowed(auth.ROLE_DEVICE, m)}
    # A reachable method without a binding would be refused to devices at run time: declare it.
    assert reachable - set(auth.DEVICE_BINDINGS) == set()
    assert {m for m in auth.DEVICE_BINDINGS if m in methods} <= reachable  # no dead entries
    for name, binding in auth.DEVICE_BINDINGS.items():
        if name not in methods:
            continue  # a service not built into this tree (yet)
        stack = [(binding, methods[name].input_type)]
        while stack:
            b, msg = stack.pop()
            for f in (*b.device, *b.site, *b.store, *b.member, *b.payment):
                assert f in msg.fields_by_name, f"{name}: {msg.name} has no field {f!r}"
            if b.items:
                assert b.item is not None
                stack.append((b.item, msg.fields_by_name[b.items].message_type))

"""gRPC services of the other domains: Marketing, Credit, Fusion, Payment and DeviceRegistry.

Each method validates through its domain module and returns messages; errors leave through the one
boundary in `common.rpc`.
"""

from __future__ import annotations

import grpc

from api.v1 import (
    credit_pb2,
    credit_pb2_grpc,
    fusion_pb2,
    fusion_pb2_grpc,
    marketing_pb2,
    marketing_pb2_grpc,
    payment_pb2,
    payment_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from cloud_stub import credit, fusion, payment, registry, validate
from cloud_stub.auth import require_device
from cloud_stub.marketing import campaigns, redeem
from cloud_stub.services.common import deadline_check, rpc, to_msg
from cloud_stub.services.crm import credit_msg
from cloud_stub.storage import Storage

Ctx = grpc.ServicerContext


class MarketingServicer(marketing_pb2_grpc.MarketingServicer):
    """Campaigns, coupon issue, online redemption and offline reconciliation."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @staticmethod
    def _campaign(row: dict) -> marketing_pb2.Campaign:
        return to_msg(marketing_pb2.Campaign, row)

    @rpc
    def CreateCampaign(self, request: marketing_pb2.Campaign, context: Ctx) -> marketing_pb2.Campaign:
        fields = {f.name: getattr(request, f.name) for f in request.DESCRIPTOR.fields}
        fields["store_ids"] = list(request.store_ids)
        return self._campaign(campaigns.create_campaign(self._s, fields))

    @rpc
    def IssueCampaign(self, request: marketing_pb2.IssueCampaignRequest, context: Ctx) -> marketing_pb2.IssueCampaignResponse:
        counts = campaigns.issue_campaign(self._s, request.campaign_id, dry_run=request.dry_run,
                                          check=deadline_check(context))
        return marketing_pb2.IssueCampaignResponse(**counts)

    @rpc
    def RedeemCoupon(self, request: marketing_pb2.RedeemCouponRequest, context: Ctx) -> marketing_pb2.Redemption:
        row = redeem.redeem(self._s, redemption_id=request.redemption_id, coupon_id=request.coupon_id,
                            member_id=request.member_id, store_id=request.store_id, device_id=request.device_id,
                            order_amount_cents=request.order_amount_cents)
        return to_msg(marketing_pb2.Redemption, row)

    @rpc
    def ReportOfflineRedemptions(
        self, request: marketing_pb2.ReportOfflineRedemptionsRequest, context: Ctx
    ) -> marketing_pb2.ReportOfflineRedemptionsResponse:
        items = [{f.name: getattr(r, f.name) for f in r.DESCRIPTOR.fields} for r in request.redemptions]
        results = redeem.reconcile_offline(self._s, request.device_id, items)
        out = marketing_pb2.ReportOfflineRedemptionsResponse()
        for r in results:
            res = out.results.add(redemption_id=r["redemption_id"], outcome=r["outcome"], reason=r["reason"])
            if r["compensation"]:
                res.compensation.CopyFrom(to_msg(marketing_pb2.CompensatingEvent, r["compensation"]))
        return out


class CreditServicer(credit_pb2_grpc.CreditServicer):
    """JOY-CRED reports and settlement events."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @rpc
    def GetCredit(self, request: credit_pb2.GetCreditRequest, context: Ctx) -> credit_pb2.CreditReport:
        return credit_msg(credit.credit_report(self._s, request.member_id))

    @rpc
    def RecordCreditEvent(self, request: credit_pb2.CreditEvent, context: Ctx) -> credit_pb2.CreditReport:
        credit.record_event(self._s, event_id=request.event_id, member_id=request.member_id, kind=request.kind,
                            amount_cents=request.amount_cents, at_ms=request.at_ms)
        return credit_msg(credit.credit_report(self._s, request.member_id))


def _identity(row: dict) -> fusion_pb2.LinkedIdentity:
    return to_msg(fusion_pb2.LinkedIdentity, row)


class FusionServicer(fusion_pb2_grpc.FusionServicer):
    """Identity graph, brand correlation, plates and parking."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @rpc
    def Link(self, request: fusion_pb2.LinkedIdentity, context: Ctx) -> fusion_pb2.LinkedIdentity:
        return _identity(fusion.link(self._s, id_type=request.id_type, id_value=request.id_value,
                                     member_id=request.member_id, evidence=request.evidence,
                                     confidence=request.confidence or 1.0, observed_at_ms=request.observed_at_ms))

    @rpc
    def Resolve(self, request: fusion_pb2.IdentityRef, context: Ctx) -> fusion_pb2.ResolveResponse:
        got = fusion.resolve(self._s, request.id_type, request.id_value)
        resp = fusion_pb2.ResolveResponse(member_id=got["member_id"], merged_path=got["merged_path"])
        if got["via"]:
            resp.via.CopyFrom(_identity(got["via"]))
        return resp

    @rpc
    def ListIdentities(self, request: fusion_pb2.ListIdentitiesRequest, context: Ctx) -> fusion_pb2.ListIdentitiesResponse:
        return fusion_pb2.ListIdentitiesResponse(
            identities=[_identity(r) for r in fusion.list_identities(self._s, request.member_id)])

    @rpc
    def Merge(self, request: fusion_pb2.MergeRequest, context: Ctx) -> fusion_pb2.MergeResponse:
        moved = fusion.merge(self._s, request.keep_member_id, request.absorb_member_id, request.evidence)
        return fusion_pb2.MergeResponse(member_id=request.keep_member_id, identities_moved=moved)

    @rpc
    def Split(self, request: fusion_pb2.SplitRequest, context: Ctx) -> fusion_pb2.SplitResponse:
        ids = [(i.id_type, i.id_value) for i in request.identities]
        moved = fusion.split(self._s, request.member_id, request.to_member_id, ids, request.evidence)
        return fusion_pb2.SplitResponse(identities_moved=moved)

    @rpc
    def BrandCorrelation(self, request: fusion_pb2.BrandCorrelationRequest, context: Ctx) -> fusion_pb2.BrandCorrelationResponse:
        got = fusion.brand_correlation(self._s, request.site_id, request.min_members)
        return fusion_pb2.BrandCorrelationResponse(
            members=got["members"], pairs=[fusion_pb2.BrandPair(**p) for p in got["pairs"]],
            clusters=[fusion_pb2.BrandCluster(brands=c) for c in got["clusters"]])

    @rpc
    def LinkPlate(self, request: fusion_pb2.PlateLink, context: Ctx) -> fusion_pb2.PlateLink:
        return to_msg(fusion_pb2.PlateLink, fusion.link_plate(self._s, request.plate, request.member_id,
                                                              request.evidence, request.observed_at_ms))

    @rpc
    def RecordParking(self, request: fusion_pb2.ParkingEvent, context: Ctx) -> fusion_pb2.ParkingEvent:
        return to_msg(fusion_pb2.ParkingEvent, fusion.record_parking(
            self._s, request.plate, request.site_id, request.bay, request.entered, request.at_ms))

    @rpc
    def FindCar(self, request: fusion_pb2.FindCarRequest, context: Ctx) -> fusion_pb2.FindCarResponse:
        # A device asks only about its own site's members and sees only cars parked at its site.
        ident = require_device(context)
        got = fusion.find_car(self._s, request.who.id_type, request.who.id_value,
                              site_id=ident.site_id if ident is not None else "")
        return fusion_pb2.FindCarResponse(member_id=got["member_id"],
                                          cars=[to_msg(fusion_pb2.CarLocation, c) for c in got["cars"]])


class PaymentServicer(payment_pb2_grpc.PaymentServicer):
    """Authorize / Capture / Refund."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @rpc
    def Authorize(self, request: payment_pb2.AuthorizeRequest, context: Ctx) -> payment_pb2.PaymentResult:
        ev = request.evidence
        req = {"idempotency_key": request.idempotency_key, "member_id": request.member_id,
               "device_id": request.device_id, "store_id": request.store_id, "amount_cents": request.amount_cents,
               "evidence": {"match_score": ev.match_score, "liveness_passed": ev.liveness_passed,
                            "liveness_method": ev.liveness_method, "phone_last4_confirmed": ev.phone_last4_confirmed}}
        return to_msg(payment_pb2.PaymentResult, payment.authorize(self._s, req))

    @rpc
    def Capture(self, request: payment_pb2.CaptureRequest, context: Ctx) -> payment_pb2.PaymentResult:
        return to_msg(payment_pb2.PaymentResult, payment.capture(self._s, request.payment_id, request.amount_cents))

    @rpc
    def Refund(self, request: payment_pb2.RefundRequest, context: Ctx) -> payment_pb2.PaymentResult:
        return to_msg(payment_pb2.PaymentResult, payment.refund(
            self._s, refund_id=request.refund_id, payment_id=request.payment_id, amount_cents=request.amount_cents,
            restore_redemption_id=request.restore_redemption_id))

    @rpc
    def GetPayment(self, request: payment_pb2.GetPaymentRequest, context: Ctx) -> payment_pb2.PaymentResult:
        return to_msg(payment_pb2.PaymentResult, payment.get_payment(self._s, request.payment_id))


class RegistryServicer(registry_pb2_grpc.DeviceRegistryServicer):
    """Sites, stores, claim tokens and devices."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @rpc
    def UpsertSite(self, request: registry_pb2.Site, context: Ctx) -> registry_pb2.Site:
        validate.ident(request.site_id, "site_id")
        validate.text(request.name, "name", required=True, max_len=100)
        self._s.upsert_site(request.site_id, request.name)
        return request

    @rpc
    def UpsertStore(self, request: registry_pb2.Store, context: Ctx) -> registry_pb2.Store:
        validate.ident(request.store_id, "store_id")
        validate.ident(request.site_id, "site_id")
        validate.text(request.name, "name", required=True, max_len=100)
        validate.text(request.brand, "brand", max_len=64)
        self._s.upsert_store(request.store_id, request.site_id, request.name, request.brand)
        return request

    @rpc
    def ListStores(self, request: registry_pb2.ListStoresRequest, context: Ctx) -> registry_pb2.ListStoresResponse:
        validate.ident(request.site_id, "site_id")
        return registry_pb2.ListStoresResponse(stores=[to_msg(registry_pb2.Store, s) for s in self._s.list_stores(request.site_id)])

    @rpc
    def CreateClaimToken(self, request: registry_pb2.CreateClaimTokenRequest, context: Ctx) -> registry_pb2.ClaimToken:
        return to_msg(registry_pb2.ClaimToken, registry.create_claim_token(
            self._s, site_id=request.site_id, store_id=request.store_id, profile=request.profile, ttl_s=request.ttl_s))

    @rpc
    def ClaimDevice(self, request: registry_pb2.ClaimDeviceRequest, context: Ctx) -> registry_pb2.Device:
        return to_msg(registry_pb2.Device, registry.claim_device(
            self._s, token=request.token, device_id=request.device_id, name=request.name))

    @rpc
    def GetDevice(self, request: registry_pb2.GetDeviceRequest, context: Ctx) -> registry_pb2.Device:
        return to_msg(registry_pb2.Device, registry.get_device(self._s, request.device_id))

    @rpc
    def ListDevices(self, request: registry_pb2.ListDevicesRequest, context: Ctx) -> registry_pb2.ListDevicesResponse:
        return registry_pb2.ListDevicesResponse(devices=[to_msg(registry_pb2.Device, d) for d in registry.list_devices(self._s, request.site_id)])

    @rpc
    def Heartbeat(self, request: registry_pb2.HeartbeatRequest, context: Ctx) -> registry_pb2.Device:
        return to_msg(registry_pb2.Device, registry.heartbeat(self._s, request.device_id, request.software_version))

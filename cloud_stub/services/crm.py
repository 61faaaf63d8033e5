"""CRM gRPC service: members, consent and face enrollment, transactions, points, tags, profiles."""

from __future__ import annotations

import grpc

from api.v1 import credit_pb2, crm_pb2, crm_service_pb2, crm_service_pb2_grpc, fusion_pb2
from cloud_stub import credit, crm, fusion, validate
from cloud_stub.errors import InvalidRequestError, NotFoundError
from cloud_stub.services.common import deadline_check, rpc, to_msg
from cloud_stub.storage import Storage
from cloud_stub.tags import compute_tags

MAX_VECTOR_BYTES = 4 * 4096


def member_msg(row: dict) -> crm_pb2.Member:
    """A Member message from a members row."""
    return to_msg(crm_pb2.Member, row)


class CrmServicer(crm_service_pb2_grpc.CRMServicer):
    """Serves the CRM service from a `Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._s = storage

    @rpc
    def UpsertMember(self, request: crm_service_pb2.UpsertMemberRequest, context: grpc.ServicerContext) -> crm_pb2.Member:
        validate.ident(request.member_id, "member_id")
        validate.ident(request.site_id, "site_id")
        validate.text(request.name, "name", required=True, max_len=64)
        validate.phone(request.phone)
        validate.birthday(request.birthday)
        with self._s.transaction("check site", write=False) as conn:
            if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (request.site_id,)).fetchone() is None:
                raise NotFoundError(f"site {request.site_id!r} does not exist (DeviceRegistry.UpsertSite)")
        try:
            old = self._s.get_member(request.member_id)
        except NotFoundError:  # a new member
            old = None
        self._s.upsert_member(
            member_id=request.member_id, site_id=request.site_id, name=request.name,
            tier=old["tier"] if old else crm.tier_for(0), points=old["points"] if old else 0,
            tier_keep_points=old["tier_keep_points"] if old else 0, phone=request.phone or None,
            gender=request.gender, birthday=request.birthday,
        )
        return member_msg(self._s.get_member(request.member_id))

    @rpc
    def GetMember(self, request: crm_service_pb2.GetMemberRequest, context: grpc.ServicerContext) -> crm_service_pb2.MemberProfile:
        validate.ident(request.member_id, "member_id")
        member = self._s.get_member(request.member_id)
        return crm_service_pb2.MemberProfile(
            member=member_msg(member),
            tags=[to_msg(crm_pb2.Tag, t) for t in crm.member_tags(self._s, request.member_id)],
            coupons=[to_msg(crm_pb2.Coupon, c) for c in crm.member_coupons(self._s, request.member_id)],
            credit=credit_msg(credit.credit_report(self._s, request.member_id)),
            identities=[to_msg(fusion_pb2.LinkedIdentity, i) for i in fusion.list_identities(self._s, request.member_id)],
        )

    @rpc
    def RecordConsent(self, request: crm_service_pb2.RecordConsentRequest, context: grpc.ServicerContext) -> crm_service_pb2.Consent:
        validate.ident(request.member_id, "member_id")
        validate.ident(request.device_id, "device_id")
        validate.ident(request.consent_id, "consent_id", required=False)
        validate.text(request.text_version, "text_version", required=True, max_len=64)
        at = validate.event_time(request.agreed_at_ms, "agreed_at_ms") if request.agreed_at_ms else None
        cid = self._s.add_consent(member_id=request.member_id, device_id=request.device_id,
                                  text_version=request.text_version, agreed_at_ms=at,
                                  consent_id=request.consent_id or None)
        return crm_service_pb2.Consent(consent_id=cid, member_id=request.member_id, device_id=request.device_id,
                                       text_version=request.text_version, agreed_at_ms=at or 0)

    @rpc
    def EnrollFace(self, request: crm_service_pb2.EnrollFaceRequest, context: grpc.ServicerContext) -> crm_service_pb2.EnrollFaceResponse:
        validate.ident(request.member_id, "member_id")
        validate.ident(request.consent_id, "consent_id")
        validate.ident(request.template_id, "template_id", required=False)
        validate.text(request.model, "model", required=True, max_len=64)
        if len(request.vector) > MAX_VECTOR_BYTES:
            raise InvalidRequestError(f"vector is {len(request.vector)} bytes; at most {MAX_VECTOR_BYTES} are allowed")
        tid = self._s.add_template(member_id=request.member_id, consent_id=request.consent_id, model=request.model,
                                   vector=request.vector, template_id=request.template_id or None)
        return crm_service_pb2.EnrollFaceResponse(template_id=tid)

    @rpc
    def WithdrawConsent(self, request: crm_service_pb2.WithdrawConsentRequest, context: grpc.ServicerContext) -> crm_service_pb2.WithdrawConsentResponse:
        validate.ident(request.member_id, "member_id")
        return crm_service_pb2.WithdrawConsentResponse(templates_deleted=self._s.withdraw_consent(request.member_id))

    @rpc
    def RecordTransaction(self, request: crm_service_pb2.Transaction, context: grpc.ServicerContext) -> crm_service_pb2.Transaction:
        row = crm.record_transaction(self._s, txn_id=request.txn_id, member_id=request.member_id,
                                     store_id=request.store_id, amount_cents=request.amount_cents,
                                     at_ms=request.at_ms, kind=request.kind or crm.PURCHASE, brand=request.brand)
        return to_msg(crm_service_pb2.Transaction, row)

    @rpc
    def ListTransactions(self, request: crm_service_pb2.ListTransactionsRequest, context: grpc.ServicerContext) -> crm_service_pb2.ListTransactionsResponse:
        rows = crm.list_transactions(self._s, request.member_id, request.limit or 100)
        return crm_service_pb2.ListTransactionsResponse(transactions=[to_msg(crm_service_pb2.Transaction, r) for r in rows])

    @rpc
    def AddPoints(self, request: crm_service_pb2.AddPointsRequest, context: grpc.ServicerContext) -> crm_service_pb2.PointsEntry:
        entry = crm.add_points(self._s, entry_id=request.entry_id, member_id=request.member_id,
                               delta=request.delta, reason=request.reason)
        return to_msg(crm_service_pb2.PointsEntry, entry)

    @rpc
    def ComputeTags(self, request: crm_service_pb2.ComputeTagsRequest, context: grpc.ServicerContext) -> crm_service_pb2.ComputeTagsResponse:
        as_of = validate.event_time(request.as_of_ms, "as_of_ms") if request.as_of_ms else None
        run = compute_tags(self._s, as_of_ms=as_of, check=deadline_check(context))
        return crm_service_pb2.ComputeTagsResponse(
            members=run.members, transactions=run.transactions, tags_written=run.tags_written,
            kmeans_k=run.kmeans_k, kmeans_silhouette=run.kmeans_silhouette,
        )


def credit_msg(report: dict) -> credit_pb2.CreditReport:
    """A CreditReport message from `credit.credit_report`'s dict."""
    return credit_pb2.CreditReport(
        member_id=report["member_id"], score=report["score"], grade=report["grade"],
        factors=[credit_pb2.CreditFactor(**f) for f in report["factors"]], privileges=report["privileges"],
        offline_limit_cents=report["offline_limit_cents"], computed_at_ms=report["computed_at_ms"],
    )

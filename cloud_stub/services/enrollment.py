"""The `Enrollment` gRPC service: `Enroll` (claim token + CSR, no client certificate needed) and
`RotateCertificate` (mTLS only, by the device itself). Errors leave through `common.rpc`."""

from __future__ import annotations

import grpc

from api.v1 import registry_pb2, registry_pb2_grpc
from cloud_stub import enrollment
from cloud_stub.auth import require_device
from cloud_stub.ca import CertificateAuthority
from cloud_stub.errors import ConflictError
from cloud_stub.services.common import rpc
from cloud_stub.storage import Storage

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["Enrollment"].full_name


class EnrollmentServicer(registry_pb2_grpc.EnrollmentServicer):
    """Signs device certificates with `ca` (None: the cloud runs without a CA and refuses)."""

    def __init__(self, storage: Storage, ca: CertificateAuthority | None, *, mtls_port: int = 0) -> None:
        self._s = storage
        self._ca = ca
        #: Advertised to enrolling devices; set by the server once the port is bound.
        self.mtls_port = mtls_port

    def _need_ca(self) -> CertificateAuthority:
        if self._ca is None:
            raise ConflictError("this cloud runs without a CA (--insecure); start it with --tls-dir to enroll devices")
        return self._ca

    def _response(self, fields: dict) -> registry_pb2.EnrollResponse:
        return registry_pb2.EnrollResponse(mtls_port=self.mtls_port, **fields)

    @rpc
    def Enroll(self, request: registry_pb2.EnrollRequest, context: grpc.ServicerContext) -> registry_pb2.EnrollResponse:
        fields = enrollment.enroll(self._s, self._need_ca(), claim_token=request.claim_token,
                                   csr_pem=request.csr_pem, device_id=request.device_id, name=request.name)
        return self._response(fields)

    @rpc
    def RotateCertificate(self, request: registry_pb2.RotateCertificateRequest,
                          context: grpc.ServicerContext) -> registry_pb2.EnrollResponse:
        caller = require_device(context)
        if caller is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "certificate rotation needs an mTLS connection")
        fields = enrollment.rotate(self._s, self._need_ca(), caller, csr_pem=request.csr_pem)
        return self._response(fields)

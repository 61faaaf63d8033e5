"""The `TechnicianLogin` gRPC service (issue 8): a one-time login token + CSR → a short-lived
technician certificate. Served on the enrollment port (the technician has no certificate yet);
`auth.ANONYMOUS_METHODS` lets exactly this call through there. Errors leave through `common.rpc`."""

from __future__ import annotations

import grpc

from api.v1 import admin_pb2, admin_pb2_grpc
from cloud_stub import technicians
from cloud_stub.ca import CertificateAuthority
from cloud_stub.errors import ConflictError
from cloud_stub.services.common import rpc
from cloud_stub.storage import Storage

SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["TechnicianLogin"].full_name


class TechnicianLoginServicer(admin_pb2_grpc.TechnicianLoginServicer):
    """Signs technician certificates with `ca` (None: the cloud runs without a CA and refuses)."""

    def __init__(self, storage: Storage, ca: CertificateAuthority | None) -> None:
        self._s = storage
        self._ca = ca

    @rpc
    def Login(self, request: admin_pb2.TechnicianLoginRequest,
              context: grpc.ServicerContext) -> admin_pb2.TechnicianLoginResponse:
        if self._ca is None:
            raise ConflictError("this cloud runs without a CA (--insecure); start it with --tls-dir")
        fields = technicians.login(self._s, self._ca, login_token=request.login_token, csr_pem=request.csr_pem)
        return admin_pb2.TechnicianLoginResponse(**fields)


def add_technician_login(server: grpc.Server, storage: Storage, tls_dir: object) -> str:
    """Register the service on `server` (signing with the CA in `tls_dir`, when there is one)."""
    ca = CertificateAuthority(tls_dir) if tls_dir is not None else None  # type: ignore[arg-type]
    admin_pb2_grpc.add_TechnicianLoginServicer_to_server(TechnicianLoginServicer(storage, ca), server)
    return SERVICE_NAME

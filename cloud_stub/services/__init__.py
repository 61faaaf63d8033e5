"""gRPC services of the reference cloud beyond Sync: CRM, Marketing, Credit, Fusion, Payment and
DeviceRegistry. `add_services(server, storage)` registers them all and returns their full names."""

from __future__ import annotations

import grpc

from api.v1 import (
    credit_pb2,
    credit_pb2_grpc,
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
)
from cloud_stub.services.crm import CrmServicer
from cloud_stub.services.domains import (
    CreditServicer,
    FusionServicer,
    MarketingServicer,
    PaymentServicer,
    RegistryServicer,
)
from cloud_stub.storage import Storage


def add_services(server: grpc.Server, storage: Storage) -> list[str]:
    """Register every domain service on `server`; returns their full names (for health/reflection)."""
    crm_service_pb2_grpc.add_CRMServicer_to_server(CrmServicer(storage), server)
    marketing_pb2_grpc.add_MarketingServicer_to_server(MarketingServicer(storage), server)
    credit_pb2_grpc.add_CreditServicer_to_server(CreditServicer(storage), server)
    fusion_pb2_grpc.add_FusionServicer_to_server(FusionServicer(storage), server)
    payment_pb2_grpc.add_PaymentServicer_to_server(PaymentServicer(storage), server)
    registry_pb2_grpc.add_DeviceRegistryServicer_to_server(RegistryServicer(storage), server)
    return [
        crm_service_pb2.DESCRIPTOR.services_by_name["CRM"].full_name,
        marketing_pb2.DESCRIPTOR.services_by_name["Marketing"].full_name,
        credit_pb2.DESCRIPTOR.services_by_name["Credit"].full_name,
        fusion_pb2.DESCRIPTOR.services_by_name["Fusion"].full_name,
        payment_pb2.DESCRIPTOR.services_by_name["Payment"].full_name,
        registry_pb2.DESCRIPTOR.services_by_name["DeviceRegistry"].full_name,
    ]

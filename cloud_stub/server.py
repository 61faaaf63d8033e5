"""The reference cloud's gRPC server: Sync, CRM, Marketing, Credit, Fusion, Payment, DeviceRegistry,
the standard health service and server reflection.

    with start_server("var/cloud.db", port=0) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
"""

from __future__ import annotations

import logging
import os
from concurrent import futures
from types import TracebackType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from api.v1 import registry_pb2_grpc, sync_pb2_grpc
from cloud_stub.errors import CloudError
from cloud_stub.services import add_services
from cloud_stub.storage import SqliteStorage, Storage
from cloud_stub.sync_service import SERVICE_NAME as SYNC_SERVICE_NAME
from cloud_stub.sync_service import SyncServicer

log = logging.getLogger(__name__)

#: gRPC worker threads.
MAX_WORKERS = 16
#: Seconds in-flight calls get to finish when the server stops without an explicit grace.
DEFAULT_GRACE_S = 2.0
#: Largest request or response; bigger ones are refused with RESOURCE_EXHAUSTED before any handler runs.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class CloudServer:
    """A running reference cloud. Stop it with `.stop()` or use it as a context manager."""

    def __init__(
        self,
        server: grpc.Server,
        executor: futures.ThreadPoolExecutor,
        health_servicer: health.HealthServicer,
        storage: Storage,
        host: str,
        port: int,
        enroll_port: int = 0,
    ) -> None:
        self._server = server
        self._executor = executor
        self._health = health_servicer
        self.storage = storage
        self.host = host
        self.port = port
        #: Server-only TLS port serving `Enrollment.Enroll` (0 when the server runs insecure).
        self.enroll_port = enroll_port
        self._stopped = False

    @property
    def address(self) -> str:
        """`host:port` a client can dial."""
        return f"{self.host}:{self.port}"

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds, release threads. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        # Health watchers see NOT_SERVING before the port goes away.
        self._health.enter_graceful_shutdown()
        self._server.stop(DEFAULT_GRACE_S if grace is None else grace).wait()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.storage.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server terminates; True when it did within `timeout`."""
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> CloudServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server(
    db_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 50051,
    insecure: bool = True,
    *,
    credentials: grpc.ServerCredentials | None = None,
    storage: Storage | None = None,
    tls_dir: str | os.PathLike[str] | None = None,
    enroll_port: int = 0,
) -> CloudServer:
    """Open the database at `db_path` (or use `storage`) and serve on `host:port` (0 = ephemeral port).

    `tls_dir` (a `joyedge-cloud ca init` directory) serves mTLS on `port` and server-only TLS for
    enrollment on `enroll_port` (0 = ephemeral), every call gated by `auth.AuthInterceptor`.
    `insecure=True` without `tls_dir` is plain text and allowed on a loopback host only.
    `credentials` (mTLS server credentials of your own) is the lower-level alternative to `tls_dir`.
    Raises CloudError when the port cannot be bound or the database cannot be opened.
    """
    from cloud_stub import auth, ca
    from cloud_stub.services.enrollment import SERVICE_NAME as ENROLL_SERVICE_NAME
    from cloud_stub.services.enrollment import EnrollmentServicer

    if tls_dir is not None:
        insecure = False
        credentials = auth.server_credentials(tls_dir)
    if not insecure and credentials is None:
        raise CloudError("a secure server needs credentials (tls_dir or grpc.ssl_server_credentials); or pass insecure=True")
    if insecure and not is_loopback(host):
        raise CloudError(f"refusing plain-text gRPC on {host}: --insecure is allowed on loopback only; use --tls-dir")
    store = storage if storage is not None else SqliteStorage(db_path)
    executor = futures.ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="joyedge-cloud")
    from cloud_stub.services.binding import binder

    # Every secure call: certificate, revocation (a rotation's first use schedules the old one's), role,
    # and the request's ids bound to the certificate (auth.DEVICE_BINDINGS).
    interceptors = [] if insecure else [auth.AuthInterceptor(ca.certificate_gate(store), bind=binder(store))]
    # so_reuseport=0: a second server on the same port must fail, not silently share it.
    server = grpc.server(executor, interceptors=interceptors, options=[
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ])
    sync_pb2_grpc.add_SyncServicer_to_server(SyncServicer(store), server)
    enroller = EnrollmentServicer(store, ca.CertificateAuthority(tls_dir) if tls_dir is not None else None)
    registry_pb2_grpc.add_EnrollmentServicer_to_server(enroller, server)
    from cloud_stub.member_qr import add_member_qr  # issue 7: the dynamic membership QR's keys
    from cloud_stub.services.technician import add_technician_login  # issue 8: `joyprov login`

    names = [SYNC_SERVICE_NAME, ENROLL_SERVICE_NAME, add_technician_login(server, store, tls_dir),
             *add_services(server, store), add_member_qr(server, getattr(store, "path", db_path))]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    def address(p: int) -> str:
        return f"[{host}]:{p}" if ":" in host else f"{host}:{p}"

    bound_enroll = 0
    try:
        bound = (
            server.add_insecure_port(address(port))
            if insecure
            else server.add_secure_port(address(port), credentials)
        )
        if bound and tls_dir is not None:
            bound_enroll = server.add_secure_port(address(enroll_port), auth.enrollment_credentials(tls_dir))
            bound = bound if bound_enroll else 0
    except RuntimeError as err:
        bound = 0
        cause: BaseException | None = err
    else:
        cause = None
    if not bound:
        server.stop(None)
        executor.shutdown(wait=True)
        raise CloudError(
            f"cannot listen on {host}:{port}: the port is in use (or the address is not local); "
            "stop the other server or pick another --port"
        ) from cause
    enroller.mtls_port = bound
    server.start()
    log.info("joyedge-cloud serving on %s:%d%s", host, bound, f" (enrollment {bound_enroll})" if bound_enroll else "")
    return CloudServer(server, executor, health_servicer, store, host, bound, bound_enroll)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (where plain-text gRPC is tolerated)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

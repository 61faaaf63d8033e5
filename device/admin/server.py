"""`AdminServer`: the device admin API on its own port, mTLS only, advertised over zeroconf.

TLS: the server certificate is the device's own enrollment certificate (`sync.identity`; the cloud
CA gives device certificates serverAuth and a DNS name for this, see `api/admin.py`). Client
certificates are required and must chain to the cloud CA: the handshake itself refuses no
certificate, a self-signed or foreign one, and an expired one; the role and site are checked per
call (`service.caller_of`). The credentials are dynamic: after a rotation the next handshake
presents the new certificate, without a restart.
"""

from __future__ import annotations

import logging
import os
from concurrent import futures
from pathlib import Path
from types import TracebackType

import grpc

from api.v1 import admin_pb2_grpc
from device.admin.service import DeviceAdminServicer
from device.config import DeviceConfig
from device.errors import DeviceError

log = logging.getLogger(__name__)

#: Worker threads of the admin server (technicians are few; a self-test may take seconds).
MAX_WORKERS = 4


def _has_server_auth(cert_pem: bytes) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no EKU: any purpose
    return ExtendedKeyUsageOID.SERVER_AUTH in eku


class AdminServer:
    """Serve `DeviceAdmin` on `host:port` (0 = a free port) and advertise it (unless `advertise=False`)."""

    def __init__(self, cfg: DeviceConfig, *, config_path: Path | None, version: str, host: str = "0.0.0.0",
                 port: int = 0, advertise: bool = True, interfaces: list[str] | None = None,
                 fake_hardware: bool = False, restart_command: str = "") -> None:
        self.cfg = cfg
        self.host = host
        self.port = port
        self.advertise = advertise
        self.interfaces = interfaces
        self.servicer = DeviceAdminServicer(cfg, config_path=config_path, version=version,
                                            fake_hardware=fake_hardware, restart_command=restart_command)
        self.version = version
        self._server: grpc.Server | None = None
        self._advertiser = None
        self._cert_mtime = 0.0
        self._executor: futures.ThreadPoolExecutor | None = None

    @property
    def _cert_path(self) -> Path:
        return self.cfg.identity_dir / "device.pem"

    def _certificate_config(self) -> grpc.ServerCertificateConfiguration:
        from sync.identity import DeviceIdentity

        ident = DeviceIdentity.load(self.cfg.identity_dir)
        self._cert_mtime = os.stat(self._cert_path).st_mtime
        return grpc.ssl_server_certificate_configuration([(ident.key_pem, ident.cert_pem)],
                                                         root_certificates=ident.ca_pem)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: a new configuration once the certificate changed."""
        try:
            if os.stat(self._cert_path).st_mtime == self._cert_mtime:
                return None
            log.info("device certificate changed; the admin API presents the new one")
            return self._certificate_config()
        except Exception as err:  # never break handshakes over a half-written rotation
            log.warning("admin TLS keeps the previous certificate: %s", err)
            return None

    def start(self) -> AdminServer:
        """Bind, start, advertise. DeviceError when the port is taken or the identity unusable."""
        ident = self.servicer.identity
        if not _has_server_auth(ident.cert_pem):
            # Certificates issued before the admin API existed are clientAuth only: rotate once.
            log.warning("device certificate %x cannot serve TLS (no serverAuth); rotating it", ident.serial)
            ident.rotate()  # the servicer reads the identity files at each call
        creds = grpc.dynamic_ssl_server_credentials(self._certificate_config(), self._fetch,
                                                    require_client_authentication=True)
        self._executor = futures.ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="joyedge-admin")
        server = grpc.server(self._executor, options=[("grpc.so_reuseport", 0)])
        admin_pb2_grpc.add_DeviceAdminServicer_to_server(self.servicer, server)
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = server.add_secure_port(address, creds)
        except RuntimeError:
            bound = 0
        if not bound:
            server.stop(None)
            self._executor.shutdown(wait=True)
            raise DeviceError(f"cannot listen on {address} for the admin API: port in use? pick another --port")
        self.port = bound
        server.start()
        self._server = server
        log.info("admin API on %s:%d (mTLS, technician certificates of site %s)", self.host, bound,
                 self.servicer.site_id)
        if self.advertise:
            from device.advertise import Advertiser

            try:
                self._advertiser = Advertiser(device_id=ident.device_id, profile=self.cfg.profile,
                                              version=self.version, site=ident.site_id, port=bound,
                                              interfaces=self.interfaces).start()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        """Withdraw the advertisement, stop serving, close the replica. Idempotent."""
        adv, self._advertiser = self._advertiser, None
        if adv is not None:
            adv.close()
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.servicer.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or `timeout`)."""
        return self._server.wait_for_termination(timeout) if self._server else True

    def __enter__(self) -> AdminServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

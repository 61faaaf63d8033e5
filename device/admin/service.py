"""`DeviceAdmin` calls: who may call (a technician of this device's site), the audit of every call,
and the calls themselves. Errors leave at one boundary (`_admin`): AdminError/ConfigError →
INVALID_ARGUMENT or FAILED_PRECONDITION, any other DeviceError/SyncError → INTERNAL, with a message
saying what to do.

The TLS handshake (server.py) already refused a caller without a certificate, with one our CA did
not sign, or with an expired one. Here the verified certificate's identity URI must name the role
`technician` and this device's site: a device certificate (also signed by our CA) or a technician
of another mall gets PERMISSION_DENIED.
"""

from __future__ import annotations

import functools
import logging
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from api.admin import ACTIONS, ROLE_TECHNICIAN, parse_identity_uri
from api.v1 import admin_pb2, admin_pb2_grpc, sync_pb2
from device.admin import actions, logfile
from device.config import DeviceConfig, dump_config, load_config
from device.errors import DeviceError
from sync.errors import SyncError

log = logging.getLogger(__name__)
audit_log = logging.getLogger("joyedge.audit")


@dataclass(frozen=True)
class Caller:
    """The verified technician behind a call."""

    uri: str
    serial: str
    site_id: str
    name: str


class Denied(Exception):
    """The caller may not use the admin API (carries the gRPC status to answer with)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def caller_of(context: grpc.ServicerContext, site_id: str) -> Caller:
    """The technician calling; Denied: UNAUTHENTICATED without a certificate, PERMISSION_DENIED for
    another role or another site."""
    from cryptography import x509

    pems = context.auth_context().get("x509_pem_cert")
    if not pems:
        raise Denied(grpc.StatusCode.UNAUTHENTICATED, "a technician certificate is required: run `joyprov login`")
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in sans.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("urn:joyedge:")]
        if len(uris) != 1:
            raise ValueError(f"{len(uris)} JoyEdge identities in the certificate")
        ident = parse_identity_uri(uris[0])
    except (ValueError, x509.ExtensionNotFound) as err:
        raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"client certificate names no usable identity: {err}") from err
    if ident["role"] != ROLE_TECHNICIAN:
        raise Denied(grpc.StatusCode.PERMISSION_DENIED,
                     f"a {ident['role']} certificate may not use the admin API; a technician certificate is "
                     "needed (`joyprov login`)")
    if ident["site_id"] != site_id:
        raise Denied(grpc.StatusCode.PERMISSION_DENIED,
                     f"technician of site {ident['site_id']!r} may not service a device of site {site_id!r}")
    return Caller(uris[0], f"{cert.serial_number:x}", ident["site_id"], ident["name"])


def _admin(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Authorize, run, audit (log + outbox), translate errors — for every admin call."""
    action = ACTIONS[fn.__name__]

    @functools.wraps(fn)
    def wrapper(self: DeviceAdminServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            caller = caller_of(context, self.site_id)
        except Denied as err:
            self.audit(None, action, "", f"refused: {err}")
            context.abort(err.code, str(err))
        detail = self.describe(action, request)
        try:
            result = fn(self, request, context, caller)
        except (actions.AdminError, DeviceError, SyncError) as err:
            bad_request = isinstance(err, actions.AdminError) or type(err).__name__ == "ConfigError"
            self.audit(caller, action, detail, f"failed: {err}")
            code = grpc.StatusCode.INVALID_ARGUMENT if bad_request else grpc.StatusCode.FAILED_PRECONDITION
            context.abort(code, str(err))
        self.audit(caller, action, detail, "ok")
        return result

    return wrapper


class DeviceAdminServicer(admin_pb2_grpc.DeviceAdminServicer):
    """The calls, over one device's config, data directory and replica (see module doc)."""

    def __init__(self, cfg: DeviceConfig, *, config_path: Path | None, version: str, fake_hardware: bool = False,
                 restart_command: str = "", selftest_runs: int = 3) -> None:
        from device.assemble import open_replica
        from sync.identity import DeviceIdentity

        self.cfg = cfg
        self.config_path = config_path
        self.version = version
        self.fake_hardware = fake_hardware
        self.restart_command = restart_command
        self.selftest_runs = selftest_runs
        self.started = time.monotonic()
        # Device, site and store never change for an enrolled device; the certificate does (rotations by
        # the sync daemon or another admin call), so `identity` is read from the files at each call.
        self.site_id = DeviceIdentity.load(cfg.identity_dir).site_id
        self._lock = threading.RLock()  # one replica at a time (a reset swaps it)
        self.replica = open_replica(cfg)
        self._supervisor: Any = None

    @property
    def identity(self) -> Any:
        """The device identity as stored now (sync.identity.DeviceIdentity): another process may have
        rotated the certificate since the last call, so nothing here keeps a copy."""
        from sync.identity import DeviceIdentity

        return DeviceIdentity.load(self.cfg.identity_dir)

    def close(self) -> None:
        """Close the replica."""
        with self._lock:
            self.replica.close()

    # -- audit ------------------------------------------------------------------------------------

    @staticmethod
    def describe(action: str, request: Any) -> str:
        """What an audit line says about a request (keys, never values that could be secrets)."""
        if action == "config_set":
            return "keys: " + ", ".join(s.key for s in request.settings)
        if action == "logs":
            return f"tail={request.tail} since_ms={request.since_ms}"
        if action == "selftest":
            return f"target={request.target or 'all'}"
        return ""

    def audit(self, caller: Caller | None, action: str, detail: str, outcome: str) -> None:
        """Log the action and queue it for the cloud (outbox stream `admin`)."""
        from sync.outbox import enqueue

        actor = caller.uri if caller else "(refused caller)"
        audit_log.info("admin %s by %s: %s%s", action, actor, outcome, f" ({detail})" if detail else "")
        event = sync_pb2.AdminActionEvent(actor=actor, actor_serial=caller.serial if caller else "", action=action,
                                          detail=detail[:2000], outcome=outcome[:500])
        try:
            with self._lock, self.replica.transaction() as conn:
                enqueue(conn, self.replica.cipher, "admin", event)
        except (SyncError, DeviceError) as err:
            log.error("admin audit event not queued for the cloud (kept in the log): %s", err)

    # -- calls ------------------------------------------------------------------------------------

    def _peripherals(self) -> list[admin_pb2.PeripheralState]:
        from device.peripherals import PeripheralSupervisor, build_peripherals
        from device.selftest import probe

        if self._supervisor is None:
            self._supervisor = PeripheralSupervisor(build_peripherals(self.cfg, fake=self.fake_hardware), probe)
        sup = self._supervisor
        sup.check_all()
        summary = sup.summary()["peripherals"]
        return [admin_pb2.PeripheralState(name=n, backend=sup.peripherals[n].backend, status=s["status"],
                                          detail=s["detail"]) for n, s in summary.items()]

    def _models(self) -> list[admin_pb2.ModelState]:
        from inference.errors import InferenceError
        from inference.store import ModelStore

        try:
            results = ModelStore(self.cfg.inference.model_dir).verify()
        except InferenceError as err:
            return [admin_pb2.ModelState(name="(store)", status="missing", detail=str(err))]
        return [admin_pb2.ModelState(name=r.name, status=r.status, detail=str(r.path) if r.ok else r.message)
                for r in results]

    def _accelerator(self) -> str:
        configured = self.cfg.inference.accelerator
        found = any(Path(d, "libedgetpu.so.1").exists() for d in ("/usr/lib", "/usr/lib/x86_64-linux-gnu",
                                                                  "/usr/lib/aarch64-linux-gnu"))
        return f"{configured} (Edge TPU runtime {'present' if found else 'absent'})"

    def _sync(self) -> admin_pb2.SyncState:
        from sync.outbox import read_status

        with self._lock:
            st = read_status(self.replica)
        lag = st.get("lag_s")
        last = st.get("last_success")
        return admin_pb2.SyncState(state=str(st.get("state") or "unknown"), lag_s=float(lag) if lag is not None else -1.0,
                                   outbox_depth=int(st.get("outbox_depth", 0)), quarantined=int(st.get("quarantined", 0)),
                                   last_success_ms=int(float(last) * 1000) if last else 0)

    def _identity(self) -> admin_pb2.IdentityState:
        from device.open_set import OpenSetPolicy

        with self._lock:
            members, templates = self.replica.template_counts()
        policy = OpenSetPolicy.from_config(self.cfg.identity)
        th = policy.thresholds(templates)
        if th.greet >= 1.0:
            detail = "face alone never greets at this size: every member confirms with the phone's last 4 digits"
        elif th.greet > th.base:
            detail = (f"face alone greets from {th.greet:.3f}; matches from {th.base:.3f} ask for the phone's last 4"
                      " digits first")
        else:
            detail = f"face alone greets from {th.greet:.3f}"
        return admin_pb2.IdentityState(members=members, templates=templates, match_threshold=th.base,
                                       greet_threshold=th.greet, payment_threshold=th.payment,
                                       scaled=policy.tail is not None, detail=detail)

    @_admin
    def Status(self, request: admin_pb2.StatusRequest, context: grpc.ServicerContext,
               caller: Caller) -> admin_pb2.StatusResponse:
        data_dir = self.cfg.device.data_dir
        usage = shutil.disk_usage(data_dir)
        try:
            host_uptime = float(Path("/proc/uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            host_uptime = 0.0
        ident = self.identity
        return admin_pb2.StatusResponse(
            device_id=ident.device_id, site_id=ident.site_id, store_id=ident.store_id, profile=self.cfg.profile,
            software_version=self.version, uptime_s=time.monotonic() - self.started, host_uptime_s=host_uptime,
            sync=self._sync(), peripherals=self._peripherals(), accelerator=self._accelerator(),
            models=self._models(), identity=self._identity(),
            disk=admin_pb2.DiskState(path=str(data_dir), total_bytes=usage.total, free_bytes=usage.free),
            certificate_not_after_ms=int(ident.not_after.timestamp() * 1000), certificate_serial=f"{ident.serial:x}")

    @_admin
    def SelfTest(self, request: admin_pb2.SelfTestRequest, context: grpc.ServicerContext,
                 caller: Caller) -> admin_pb2.SelfTestResponse:
        from device.selftest import accelerator_summary, failed, run_selftest

        target = request.target or "all"
        if target not in ("hardware", "inference", "all"):
            raise actions.AdminError(f"target must be hardware, inference or all, not {target!r}")
        rows = run_selftest(self.cfg, target, fake=self.fake_hardware, runs=self.selftest_runs)  # type: ignore[arg-type]
        checks = [admin_pb2.SelfTestCheck(name=r.name, kind=r.kind, backend=r.backend, status=r.status,
                                          detail=r.detail, median_ms=r.median_ms or 0.0) for r in rows]
        # The Edge TPU reason is said once, as its own row (kind "accelerator"), not on every model row.
        summary = accelerator_summary(rows, self.cfg.inference.accelerator).line()
        if summary:
            checks.append(admin_pb2.SelfTestCheck(name="accelerator", kind="accelerator", backend="-",
                                                  status="ok", detail=summary))
        return admin_pb2.SelfTestResponse(ok=not failed(rows), checks=checks)

    @_admin
    def Logs(self, request: admin_pb2.LogsRequest, context: grpc.ServicerContext,
             caller: Caller) -> admin_pb2.LogsResponse:
        if request.tail < 0 or request.since_ms < 0:
            raise actions.AdminError("tail and since_ms must not be negative")
        lines, truncated = logfile.read_logs(self.cfg.device.data_dir, tail=request.tail, since_ms=request.since_ms)
        return admin_pb2.LogsResponse(lines=lines, truncated=truncated)

    def _config_response(self, cfg: DeviceConfig, restart_needed: bool = False) -> admin_pb2.ConfigResponse:
        text = self.config_path.read_text(encoding="utf-8") if self.config_path else ""
        return admin_pb2.ConfigResponse(device_file=text, resolved=dump_config(cfg), restart_needed=restart_needed,
                                        path=str(self.config_path or ""))

    @_admin
    def GetConfig(self, request: admin_pb2.GetConfigRequest, context: grpc.ServicerContext,
                  caller: Caller) -> admin_pb2.ConfigResponse:
        cfg = load_config(self.config_path, profile=None if self.config_path else self.cfg.profile)
        return self._config_response(cfg)

    @_admin
    def SetConfig(self, request: admin_pb2.SetConfigRequest, context: grpc.ServicerContext,
                  caller: Caller) -> admin_pb2.ConfigResponse:
        if self.config_path is None:
            raise actions.AdminError("this device runs without a device config file (--config); nothing to set")
        cfg = actions.set_config(self.config_path, [(s.key, s.value) for s in request.settings])
        return self._config_response(cfg, restart_needed=True)

    def _run_restart(self) -> str:
        if not self.restart_command:
            raise DeviceError("no restart command configured (admin-serve --restart-command, e.g. "
                              "\"systemctl restart joyedge-run.service joyedge-sync.service\")")
        try:
            subprocess.Popen(shlex.split(self.restart_command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        except OSError as err:
            raise DeviceError(f"restart command {self.restart_command!r} failed: {err.strerror}") from err
        return f"started: {self.restart_command}"

    @_admin
    def Restart(self, request: admin_pb2.RestartRequest, context: grpc.ServicerContext,
                caller: Caller) -> admin_pb2.RestartResponse:
        return admin_pb2.RestartResponse(detail=self._run_restart())

    @_admin
    def FactoryReset(self, request: admin_pb2.FactoryResetRequest, context: grpc.ServicerContext,
                     caller: Caller) -> admin_pb2.FactoryResetResponse:
        from device.assemble import open_replica

        if request.confirm_device_id != self.identity.device_id:
            raise actions.AdminError(f"confirm_device_id {request.confirm_device_id!r} is not this device "
                                     f"({self.identity.device_id}); nothing was erased")
        with self._lock:
            self.replica.close()
            self.replica.cipher.destroy()  # crypto-erase first: the data key is what makes templates readable
            removed = actions.erase_replica(self.cfg.db_path)
            self.replica = open_replica(self.cfg)  # empty, with a new data key; audit events go here
        detail = "templates crypto-erased, replica removed"
        if self.restart_command:
            detail += "; " + self._run_restart()
        else:
            detail += "; restart the device app and sync daemon so they drop what they hold in memory"
        log.warning("factory reset by %s: %s", caller.uri, detail)
        return admin_pb2.FactoryResetResponse(templates_erased=True, replica_erased=True,
                                              replica_bytes_removed=removed, detail=detail)

    @_admin
    def RotateCertificate(self, request: admin_pb2.RotateCertificateAdminRequest, context: grpc.ServicerContext,
                          caller: Caller) -> admin_pb2.RotateCertificateAdminResponse:
        # Loaded now, not at start: the sync daemon (or an earlier call) may have rotated since, and the
        # answer must name the certificate this call replaced. rotate() itself rotates the files' current
        # certificate under the identity writer lock, so a rotation racing this one is never undone.
        old = self.identity
        new = old.rotate()  # the server's TLS picks up the new files at its next handshake
        return admin_pb2.RotateCertificateAdminResponse(old_serial=f"{old.serial:x}", new_serial=f"{new.serial:x}",
                                                        not_after_ms=int(new.not_after.timestamp() * 1000))

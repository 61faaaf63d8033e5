"""`joyprov login | status | selftest | logs | config | restart | reset | rotate-cert` (field service).

Exit codes as the rest of joyprov: 0 done; 1 the device could not do it / a self-test found
something missing; 2 bad command line; 3 bad input (no or expired login, bad value, invalid config:
the key is named); 4 refused (the device refused the certificate, or `reset` without `--yes`);
5 the device or cloud could not be reached.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict

from api.v1 import admin_pb2
from provisioning.errors import BadInput, Refused, VerifyFailed


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True))


def _as_dict(msg: Any) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _client(args: argparse.Namespace) -> Any:
    from provisioning.admin_client import AdminClient, Credentials

    return AdminClient(args.host, Credentials.load(args.cert_dir))


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def cmd_login(args: argparse.Namespace) -> int:
    from provisioning.admin_client import login

    out = login(args.cloud, args.token, args.ca_file, args.cert_dir, server_name=args.server_name or "")
    if args.json:
        _print_json(out)
    else:
        until = datetime.fromtimestamp(out["not_after_ms"] / 1000)
        print(f"logged in as technician {out['name']} of site {out['site_id']} until {until:%Y-%m-%d %H:%M} "
              f"(certificate in {out['cert_dir']})")
        print("next: joyprov discover, then joyprov status HOST")
    return 0


def _ago(ms: int) -> str:
    return "never" if ms <= 0 else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as c:
        s = c.call("Status", admin_pb2.StatusRequest(), "status")
    if args.json:
        _print_json(_as_dict(s))
        return 0
    free = s.disk.free_bytes / max(s.disk.total_bytes, 1)
    print(f"device     {s.device_id} ({s.profile}) site {s.site_id} store {s.store_id}, joyedge {s.software_version}")
    print(f"uptime     admin {s.uptime_s:.0f} s, host {s.host_uptime_s:.0f} s")
    lag = "never caught up" if s.sync.lag_s < 0 else f"lag {s.sync.lag_s:.1f} s"
    print(f"sync       {s.sync.state}, {lag}, outbox {s.sync.outbox_depth}, quarantined {s.sync.quarantined}, "
          f"last success {_ago(s.sync.last_success_ms)}")
    print(f"accel      {s.accelerator}")
    ident = s.identity
    print(f"identity   {ident.members} members, {ident.templates} templates; {ident.detail}; "
          f"pays without phone digits from {ident.payment_threshold:.3f}"
          + ("" if ident.scaled else " (fixed thresholds: scale_with_gallery = false)"))
    print(f"disk       {s.disk.free_bytes / 1e9:.1f} GB free of {s.disk.total_bytes / 1e9:.1f} GB ({free:.0%}) "
          f"at {s.disk.path}")
    print(f"cert       serial {s.certificate_serial}, valid until {_ago(s.certificate_not_after_ms)}")
    rows = [("PERIPHERAL", "BACKEND", "STATUS", "DETAIL")]
    rows += [(p.name, p.backend, p.status, p.detail) for p in s.peripherals]
    rows += [(m.name, "model", m.status, m.detail) for m in s.models]
    print(_table(rows))
    bad = [p.name for p in s.peripherals if p.status != "ok"] + [m.name for m in s.models if m.status != "ok"]
    if bad:
        print(f"next: {', '.join(bad)} not ok: run `joyprov selftest {args.host}` and `joyprov logs {args.host}`")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    with _client(args) as c:
        r = c.call("SelfTest", admin_pb2.SelfTestRequest(target=args.target), "selftest")
    if args.json:
        _print_json(_as_dict(r))
    else:
        rows = [("NAME", "KIND", "BACKEND", "STATUS", "DETAIL")]
        rows += [(k.name, k.kind, k.backend, k.status, k.detail) for k in r.checks]
        print(_table(rows))
        if not r.ok:
            print("next: fix or replug what is missing, then run the self-test again")
    return 0 if r.ok else 1


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(text: str, now: float | None = None) -> int:
    """`--since`: 30m / 2h / 1d ago, an ISO time (local), or epoch milliseconds → epoch ms."""
    now = time.time() if now is None else now
    m = _RELATIVE.match(text)
    if m:
        return int((now - float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]) * 1000)
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError as err:
        raise BadInput(f"--since {text!r}: give 30m, 2h, 1d, an ISO time (2024-05-01T10:00) or epoch ms") from err


def cmd_logs(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else 0
    with _client(args) as c:
        r = c.call("Logs", admin_pb2.LogsRequest(tail=args.tail or 0, since_ms=since), "logs")
    if args.json:
        _print_json({"lines": list(r.lines), "truncated": r.truncated})
        return 0
    for line in r.lines:
        print(line)
    if r.truncated:
        print(f"(older lines cut: use --since or a larger --tail; the device sends at most {len(r.lines)})")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    with _client(args) as c:
        if args.config_command == "get":
            r = c.call("GetConfig", admin_pb2.GetConfigRequest(), "config get")
        else:
            settings = []
            for item in args.settings:
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise BadInput(f"{item!r}: settings are KEY=VALUE (identity.match_threshold=0.9)")
                settings.append(admin_pb2.ConfigSetting(key=key.strip(), value=value.strip()))
            r = c.call("SetConfig", admin_pb2.SetConfigRequest(settings=settings), "config set")
    if args.json:
        _print_json(_as_dict(r))
        return 0
    if args.config_command == "get":
        print(f"# device file {r.path or '(none: profile defaults only)'}")
        print(r.device_file if args.file_only else r.resolved, end="")
    else:
        print(f"{r.path}: {len(args.settings)} setting(s) written and validated")
        if r.restart_needed:
            print(f"next: joyprov restart {args.host} (the app reads its config at start)")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    with _client(args) as c:
        r = c.call("Restart", admin_pb2.RestartRequest(), "restart")
    print(json.dumps({"detail": r.detail}) if args.json else f"{args.host}: {r.detail}")
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    with _client(args) as c:
        device = c.device["device_id"]
        if not args.yes:
            raise Refused(f"factory reset of {device} erases its face templates and local data for good; "
                          f"run again with --yes to do it")
        r = c.call("FactoryReset", admin_pb2.FactoryResetRequest(confirm_device_id=device), "factory reset")
    if args.json:
        _print_json({"device_id": device, **_as_dict(r)})
    else:
        print(f"{device}: {r.detail} ({r.replica_bytes_removed} bytes of replica removed)")
        print("next: the device syncs its member data again from the cloud; `joyprov status` shows progress")
    if not (r.templates_erased and r.replica_erased):
        raise VerifyFailed("the device did not confirm both erasures")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    with _client(args) as c:
        r = c.call("RotateCertificate", admin_pb2.RotateCertificateAdminRequest(), "certificate rotation")
        device = c.device["device_id"]
    if args.json:
        _print_json({"device_id": device, **_as_dict(r)})
    else:
        print(f"{device}: certificate {r.old_serial} replaced by {r.new_serial}, valid until {_ago(r.not_after_ms)}")
    return 0


def register(sub: Any) -> None:
    """Add the field-service commands to joyprov's parser."""
    from provisioning.admin_client import default_cert_dir

    def device_cmd(name: str, help_: str, func: Any, json_flag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("host", help="device address HOST[:PORT] (port 50443 by default; `joyprov discover` lists them)")
        p.add_argument("--cert-dir", type=Path, default=default_cert_dir(),
                       help="technician credentials from `joyprov login` (default $JOYPROV_HOME or ~/.config/joyprov)")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(func=func)
        return p

    p = sub.add_parser("login", help="get a short-lived technician certificate from the cloud")
    p.add_argument("--cloud", required=True, metavar="HOST:PORT", help="the cloud's enrollment port")
    p.add_argument("--token", required=True, help="one-time login token (`joyedge-cloud ca issue-technician-token`)")
    p.add_argument("--ca-file", type=Path, required=True, help="the cloud's CA certificate (ca.pem)")
    p.add_argument("--server-name", help="TLS name of the cloud when HOST is an address its certificate does not name")
    p.add_argument("--cert-dir", type=Path, default=default_cert_dir(), help="where to keep the credentials")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_login)

    device_cmd("status", "a device's versions, sync, peripherals, models, disk", cmd_status)
    p = device_cmd("selftest", "run a device's self-test (exit 1 when something is missing)", cmd_selftest)
    p.add_argument("--target", choices=["hardware", "inference", "all"], default="all")
    p = device_cmd("logs", "a device's log lines", cmd_logs)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tail", type=int, help="the last N lines (default 200)")
    which.add_argument("--since", help="lines since 30m / 2h / 1d ago, an ISO time, or epoch ms")
    p = sub.add_parser("config", help="read or change a device's config (validated on the device)")
    csub = p.add_subparsers(dest="config_command", required=True)
    g = csub.add_parser("get", help="the resolved config (or --file-only: the device file)")
    for q in (g, csub.add_parser("set", help="set KEY=VALUE ... (TOML values); refused with the key named if invalid")):
        q.add_argument("host")
        q.add_argument("--cert-dir", type=Path, default=default_cert_dir())
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=cmd_config)
    g.add_argument("--file-only", action="store_true")
    csub.choices["set"].add_argument("settings", nargs="+", metavar="KEY=VALUE")
    device_cmd("restart", "restart the device app and sync daemon", cmd_restart)
    p = device_cmd("reset", "factory reset: crypto-erase face templates and the local replica", cmd_reset)
    p.add_argument("--yes", action="store_true", help="really erase (without it nothing happens: exit 4)")
    device_cmd("rotate-cert", "make the device rotate its certificate now", cmd_rotate)

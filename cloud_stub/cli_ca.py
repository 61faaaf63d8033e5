"""`joyedge-cloud ca …`: the certificate authority and device admission.

    joyedge-cloud ca init --dir var/ca [--host cloud.example.com ...]
    joyedge-cloud ca issue-claim-token --db var/cloud.db --site-id S --store-id T --profile mirror [--json]
    joyedge-cloud ca revoke --db var/cloud.db (SERIAL | --device ID) [--reason TEXT]
    joyedge-cloud ca list --db var/cloud.db [--device ID] [--json]
    joyedge-cloud ca issue-technician NAME --site-id S [--hours H] --db PATH [--dir var/ca] --out DIR
    joyedge-cloud ca issue-technician-token NAME --site-id S [--hours H] [--ttl-s N] --db PATH [--json]
    joyedge-cloud ca audit --db PATH [--device ID] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_CA_DIR = Path("var/ca")


def add_ca_commands(sub: Any, db_arg: Any) -> None:
    """`ca init|issue-claim-token|revoke|list`."""
    ca = sub.add_parser("ca", help="certificate authority: init, claim tokens, revocation")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="ACTION")
    init = ca_sub.add_parser("init", help="create the CA key/cert and the server certificate")
    init.add_argument("--dir", type=Path, default=DEFAULT_CA_DIR, help=f"CA directory (default {DEFAULT_CA_DIR})")
    init.add_argument("--host", action="append", default=[],
                      help="a host name or address the cloud is reached by (repeatable; localhost is always in)")
    tok = ca_sub.add_parser("issue-claim-token", help="a single-use token an installer enrolls one device with")
    db_arg(tok)
    tok.add_argument("--site-id", required=True)
    tok.add_argument("--store-id", required=True)
    tok.add_argument("--profile", required=True, choices=["mirror", "pos-flagship", "pos-mobile"])
    tok.add_argument("--ttl-s", type=int, default=0, help="validity in seconds (default 24 h)")
    tok.add_argument("--json", action="store_true")
    rev = ca_sub.add_parser("revoke", help="revoke a certificate (by hex serial) or all of a device's")
    db_arg(rev)
    what = rev.add_mutually_exclusive_group(required=True)
    what.add_argument("serial", nargs="?", help="certificate serial number, hex")
    what.add_argument("--device", help="revoke every certificate of this device id")
    rev.add_argument("--reason", default="revoked by operator")
    lst = ca_sub.add_parser("list", help="issued certificates")
    db_arg(lst)
    lst.add_argument("--device", default="")
    lst.add_argument("--json", action="store_true")
    _add_technician_commands(ca_sub, db_arg)


def _add_technician_commands(ca_sub: Any, db_arg: Any) -> None:
    """Issue 8: technician certificates for the device admin API, and the admin audit trail."""
    from cloud_stub.technicians import DEFAULT_TECHNICIAN_HOURS, MAX_TECHNICIAN_HOURS

    hours_help = f"certificate lifetime in hours (default {DEFAULT_TECHNICIAN_HOURS:g}, at most {MAX_TECHNICIAN_HOURS:g})"
    tech = ca_sub.add_parser("issue-technician", help="a technician key + certificate written to --out (offline use)")
    tech.add_argument("name", help="the technician's name (an id: letters, digits, . _ @ + -)")
    db_arg(tech)
    tech.add_argument("--site-id", required=True, help="the site (mall) whose devices it may service")
    tech.add_argument("--hours", type=float, default=DEFAULT_TECHNICIAN_HOURS, help=hours_help)
    tech.add_argument("--dir", type=Path, default=DEFAULT_CA_DIR, help=f"CA directory (default {DEFAULT_CA_DIR})")
    tech.add_argument("--out", type=Path, required=True, help="where to write technician.key/.pem and ca.pem")
    tech.add_argument("--json", action="store_true")
    tok = ca_sub.add_parser("issue-technician-token",
                            help="a one-time login token for `joyprov login` (the key stays on the laptop)")
    tok.add_argument("name")
    db_arg(tok)
    tok.add_argument("--site-id", required=True)
    tok.add_argument("--hours", type=float, default=DEFAULT_TECHNICIAN_HOURS, help=hours_help)
    tok.add_argument("--ttl-s", type=int, default=0, help="how long the token may wait to be used (default 1 h)")
    tok.add_argument("--json", action="store_true")
    aud = ca_sub.add_parser("audit", help="device admin actions reported by devices (newest first)")
    db_arg(aud)
    aud.add_argument("--device", default="")
    aud.add_argument("--limit", type=int, default=200)
    aud.add_argument("--json", action="store_true")


def _run_technician(args: argparse.Namespace, storage: Any, table: Any, prog: str) -> int:
    from cloud_stub import ca, technicians

    if args.ca_command == "issue-technician":
        out = technicians.issue_technician(storage, ca.CertificateAuthority(args.dir), args.out,
                                           site_id=args.site_id, name=args.name, hours=args.hours)
        print(json.dumps(out) if args.json else
              f"{prog}: technician {args.name} of {args.site_id}: {out['dir']}/technician.pem (serial "
              f"{out['serial']}), valid {args.hours:g} h; next: joyprov status HOST --cert-dir {out['dir']}")
        return 0
    if args.ca_command == "issue-technician-token":
        tok = technicians.create_login_token(storage, site_id=args.site_id, name=args.name, hours=args.hours,
                                             ttl_s=args.ttl_s)
        print(json.dumps(tok) if args.json else tok["token"])
        return 0
    rows = technicians.audit_trail(storage, args.device, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    keys = ("at_ms", "device_id", "actor", "action", "outcome", "detail")
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    return 0


def run_ca(args: argparse.Namespace, open_storage: Any, table: Any, prog: str) -> int:
    """Run a `ca` action; CloudErrors propagate to `main` (one line, exit 2)."""
    from cloud_stub import ca, registry

    if args.ca_command == "init":
        paths = ca.init_ca(args.dir, tuple(args.host))
        print(f"{prog}: CA in {paths.dir}: {paths.ca_cert.name} (give it to devices), "
              f"{paths.server_cert.name} for {', '.join(dict.fromkeys((*ca.DEFAULT_HOSTS, *args.host)))}")
        return 0
    storage = open_storage(args.db, create=False)
    if args.ca_command == "issue-claim-token":
        token = registry.create_claim_token(storage, site_id=args.site_id, store_id=args.store_id,
                                            profile=args.profile, ttl_s=args.ttl_s)
        print(json.dumps(token) if args.json else token["token"])
        return 0
    if args.ca_command in ("issue-technician", "issue-technician-token", "audit"):
        return _run_technician(args, storage, table, prog)
    if args.ca_command == "revoke":
        for serial in ca.revoke(storage, serial=args.serial or "", device_id=args.device or "", reason=args.reason):
            print(f"{prog}: revoked {serial}")
        return 0
    rows = ca.list_certificates(storage, args.device)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    keys = ("serial", "role", "site_id", "store_id", "device_id", "not_after_ms", "replaces", "revoked_at_ms")
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    return 0

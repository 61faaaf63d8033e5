"""`joyedge-cloud`: run the reference cloud, seed demo data, inspect members.

    joyedge-cloud ca init --dir var/ca
    joyedge-cloud serve --db var/cloud.db --tls-dir var/ca --port 50051 --enroll-port 50052
    joyedge-cloud serve --db var/cloud.db --insecure --port 50051      (plain text, loopback only)
    joyedge-cloud ca issue-claim-token --db var/cloud.db --site-id S --store-id T --profile mirror
    joyedge-cloud ca revoke --db var/cloud.db SERIAL | --device ID
    joyedge-cloud seed-demo --db var/cloud.db --faces ../shared/data/lfw_original_10id --json
    joyedge-cloud member list --db var/cloud.db --limit 20 --json
    joyedge-cloud member show site-demo-m001 --db var/cloud.db --json
    joyedge-cloud member transactions site-demo-m001 --db var/cloud.db --json
    joyedge-cloud member qr site-demo-m001 --db var/cloud.db [--ttl 90] [--png qr.png]
    joyedge-cloud tags compute --db var/cloud.db
    joyedge-cloud reconcile list [--site S] [--open|--all] [--json] --db var/cloud.db
    joyedge-cloud reconcile close COMP_ID --note "collected" --db var/cloud.db

A user mistake (missing folder, unreadable database, port in use) is one line on stderr,
`joyedge-cloud: error: …`, and exit code 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud_stub.cli_admin import (
    add_member_commands,
    add_tags_commands,
    member_show,
    member_transactions,
    tags_compute,
)
from cloud_stub.cli_ca import add_ca_commands, run_ca
from cloud_stub.cli_member_qr import add_member_qr_command, member_qr, member_qr_admin
from cloud_stub.cli_reconcile import add_reconcile_commands, run_reconcile
from cloud_stub.errors import CloudError

PROG = "joyedge-cloud"
DEFAULT_DB = Path("var/cloud.db")
#: Seconds in-flight calls get to finish after SIGTERM/SIGINT.
SHUTDOWN_GRACE_S = 5.0


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (an operator's `--site` must not be taken for another option)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"SQLite database (default {DEFAULT_DB})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `joyedge-cloud`."""
    parser = _Parser(prog=PROG, description="JoyEdge reference cloud")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the gRPC API until SIGTERM/SIGINT")
    _db_arg(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50051, help="0 picks a free port (printed)")
    tls = serve.add_mutually_exclusive_group(required=True)
    tls.add_argument("--tls-dir", type=Path, help="CA directory from `ca init`: mTLS + an enrollment port")
    tls.add_argument("--insecure", action="store_true", help="plain-text gRPC (loopback hosts only)")
    serve.add_argument("--enroll-port", type=int, default=0,
                       help="server-only TLS port for device enrollment with --tls-dir (0 picks a free one)")

    seed = sub.add_parser("seed-demo", help="create a demo site, stores and members (faces from photos)")
    _db_arg(seed)
    seed.add_argument("--faces", type=Path, help="folder with one sub-folder of photos per person")
    seed.add_argument("--members", type=int, default=12, help="members to create without --faces")
    seed.add_argument("--days", type=int, default=365, help="days of purchase history")
    seed.add_argument("--enroll-per-person", type=int, default=3)
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--site-id", default="site-demo")
    seed.add_argument("--json", action="store_true", help="print the report as JSON")

    member = sub.add_parser("member", help="member data")
    member_sub = member.add_subparsers(dest="member_command", required=True, metavar="ACTION")
    mlist = member_sub.add_parser("list", help="list members")
    _db_arg(mlist)
    mlist.add_argument("--site-id", help="only this site")
    mlist.add_argument("--limit", type=int, default=0, help="at most this many (0 = all)")
    mlist.add_argument("--json", action="store_true")
    add_member_commands(member_sub, _db_arg)
    add_member_qr_command(member_sub, _db_arg)
    add_tags_commands(sub, _db_arg)
    add_ca_commands(sub, _db_arg)
    add_reconcile_commands(sub, _db_arg)
    return parser


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table that lines up CJK text (two columns per wide character)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c + " " * (w - _width(c)) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def _open_storage(db: Path, *, create: bool):
    from cloud_stub.storage import SqliteStorage

    if create:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CloudError(f"cannot create folder {db.parent}: {err.strerror}") from err
    elif not db.is_file():
        raise CloudError(f"no database at {db} (run `{PROG} seed-demo --db {db}` first)")
    return SqliteStorage(db)


def _serve(args: argparse.Namespace) -> int:
    from cloud_stub.server import start_server

    storage = _open_storage(args.db, create=True)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with start_server(args.db, host=args.host, port=args.port, storage=storage, insecure=args.insecure,
                          tls_dir=args.tls_dir, enroll_port=args.enroll_port) as server:
            tls = f" mTLS, enrollment on {args.host}:{server.enroll_port}" if args.tls_dir else ""
            print(f"{PROG}: serving on {args.host}:{server.port} (db {args.db}){tls}", flush=True)
            while not stop.wait(1.0):
                pass
            server.stop(SHUTDOWN_GRACE_S)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    from cloud_stub.demo import seed_demo

    if args.faces is not None and not args.faces.is_dir():
        raise CloudError(f"faces folder {args.faces} does not exist")
    storage = _open_storage(args.db, create=True)

    def progress(msg: str) -> None:
        print(f"{PROG}: {msg}", file=sys.stderr, flush=True)

    report = seed_demo(
        storage, args.faces, members=args.members, enroll_per_person=args.enroll_per_person,
        site_id=args.site_id, seed=args.seed, days=args.days, progress=progress,
    )
    if args.json:
        print(report.to_json())
        return 0
    print(f"site {report.site_id}, stores {', '.join(report.store_ids)}")
    rows = [
        (m.member_id, m.name, m.person or "-", m.templates,
         "; ".join(f"{s['file']}: {s['reason']}" for s in m.skipped) or "-")
        for m in report.members
    ]
    print(_table(("member_id", "name", "person", "templates", "skipped"), rows))
    return 0


def _member_list(args: argparse.Namespace) -> int:
    storage = _open_storage(args.db, create=False)
    if args.limit < 0:
        raise CloudError(f"--limit must be >= 0, got {args.limit}")
    members = storage.list_members(args.site_id)
    if args.limit:
        members = members[: args.limit]
    keys = ("member_id", "site_id", "name", "tier", "points", "tier_keep_points", "phone_last4",
            "gender", "birthday", "templates", "coupons")
    if args.json:
        print(json.dumps([{k: m[k] for k in keys} for m in members], ensure_ascii=False, indent=2))
        return 0
    print(_table(keys, [[m[k] for k in keys] for m in members]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `joyedge-cloud`; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "seed-demo":
            return _seed_demo(args)
        if args.command == "ca":
            return run_ca(args, _open_storage, _table, PROG)
        if args.command == "reconcile":
            return run_reconcile(args, _open_storage, _table)
        if args.command == "tags":
            return tags_compute(_open_storage(args.db, create=False), args, PROG)
        if args.member_command == "show":
            return member_show(_open_storage(args.db, create=False), args, _table)
        if args.member_command == "qr":
            return member_qr(args, _open_storage)
        if args.member_command in ("qr-refusals", "qr-legacy"):
            return member_qr_admin(args, _open_storage, _table)
        if args.member_command == "transactions":
            return member_transactions(_open_storage(args.db, create=False), args, _table)
        return _member_list(args)
    except CloudError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

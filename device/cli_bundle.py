"""`joyedge bundle install | rollback | status`: signed model/config bundles. Registered by device.cli."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_ROOT = Path("var/device")  # DeviceSection.data_dir's default


def cmd_install(args: argparse.Namespace) -> int:
    from device.bundles import DEFAULT_PUBKEY, BundleStore, load_public_key

    key = load_public_key(args.pubkey or DEFAULT_PUBKEY)
    r = BundleStore(args.root).install(args.file, key)
    if args.json:
        print(json.dumps(vars(r), indent=2))
    else:
        print(f"installed {r.kind} bundle {r.version} at {r.path}"
              + (f" (previous {r.previous} kept: `joyedge bundle rollback` goes back)" if r.previous else ""))
        print("next: restart the device app (`systemctl restart joyedge`) to use it")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from device.bundles import BundleStore

    kind, old, new = BundleStore(args.root).rollback(args.kind)
    if args.json:
        print(json.dumps({"kind": kind, "from": old, "to": new}, indent=2))
    else:
        print(f"rolled {kind} back from {old} to {new}; running it again rolls forward")
        print("next: restart the device app (`systemctl restart joyedge`)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from device.bundles import BundleStore

    rows = BundleStore(args.root).status()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'KIND':8} {'CURRENT':12} {'PREVIOUS':12} {'HIGHEST':12}")
    for r in rows:
        print(f"{r['kind']:8} {r['current'] or '-':12} {r['previous'] or '-':12} {r['highest'] or '-':12}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `joyedge bundle …` to the `joyedge` parser."""
    b = sub.add_parser("bundle", help="install or roll back signed model/config bundles")
    bsub = b.add_subparsers(dest="bundle_command", required=True)
    p = bsub.add_parser("install", help="verify a signed bundle against the pinned key and install it")
    p.add_argument("file", type=Path)
    p.add_argument("--pubkey", type=Path, help="pinned public key (default /etc/joyedge/bundle.pub)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="device data directory (default var/device)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_install)
    p = bsub.add_parser("rollback", help="go back to the previous bundle (of the kind installed last)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--kind", choices=["models", "config"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_rollback)
    p = bsub.add_parser("status", help="current, previous and highest bundle per kind")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

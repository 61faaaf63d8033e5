"""`joyedge-cloud member qr <member_id> [--ttl S] [--png FILE]`: mint a dynamic membership QR token.

What the 悦云 mini-program does every ~30 s, for demos and tests: prints the signed token (one line,
the QR's text) and optionally writes it as a PNG QR code to show to a mirror's camera.

`member qr-refusals [--site-id S] [--limit N] [--json]`: enrollments the cloud refused because their
membership QR did not hold (replayed at another device, another member's or mall's code, forged, stale).
`member qr-legacy <site_id> on|off`: whether the site accepts enrollments without a token (devices on
legacy static codes); off by default.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloud_stub.errors import CloudError
from cloud_stub.member_qr import DEFAULT_TTL_S, MemberQrKeys, key_dir_for, refusals, set_legacy_policy


def add_member_qr_command(member_sub: Any, db_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `member qr`."""
    qr = member_sub.add_parser("qr", help="mint a signed, short-lived membership QR token (as the mini-program shows)")
    db_arg(qr)
    qr.add_argument("member_id")
    qr.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help=f"seconds the token is valid (default {DEFAULT_TTL_S}, max 120)")
    qr.add_argument("--png", type=Path, help="also write the QR code image to this PNG file")
    ref = member_sub.add_parser("qr-refusals", help="enrollments refused because their membership QR did not hold")
    db_arg(ref)
    ref.add_argument("--site-id", help="only this site")
    ref.add_argument("--limit", type=int, default=100)
    ref.add_argument("--json", action="store_true")
    legacy = member_sub.add_parser("qr-legacy", help="accept enrollments without a token at a site (insecure)")
    db_arg(legacy)
    legacy.add_argument("site_id")
    legacy.add_argument("state", choices=("on", "off"))


def member_qr(args: argparse.Namespace, open_storage: Callable[..., Any]) -> int:
    """Print a token for `args.member_id` (and write `--png`)."""
    storage = open_storage(args.db, create=False)
    token = MemberQrKeys(key_dir_for(args.db)).mint(storage, args.member_id, ttl_s=args.ttl)
    if args.png is not None:
        try:
            import qrcode
        except ImportError as err:
            raise CloudError("--png needs the qrcode package: pip install qrcode") from err
        try:
            qrcode.make(token, box_size=6, border=4).save(str(args.png))
        except OSError as err:
            raise CloudError(f"cannot write {args.png}: {err.strerror or err}") from err
    print(token, flush=True)
    return 0


def member_qr_admin(args: argparse.Namespace, open_storage: Callable[..., Any],
                    table: Callable[[Sequence[str], Sequence[Sequence[Any]]], str]) -> int:
    """`member qr-refusals` and `member qr-legacy`."""
    storage = open_storage(args.db, create=False)
    if args.member_command == "qr-legacy":
        set_legacy_policy(storage, args.site_id, args.state == "on")
        print(f"legacy member codes {'ALLOWED (insecure)' if args.state == 'on' else 'refused'} at {args.site_id}")
        return 0
    rows = refusals(storage, site_id=args.site_id, limit=args.limit)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    cols = ("received_at_ms", "site_id", "device_id", "member_id", "reason", "event_id")
    print(table(cols, [[r[c] for c in cols] for r in rows]))
    return 0

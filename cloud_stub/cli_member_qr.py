"""`joyedge-cloud member qr <member_id> [--ttl S] [--png FILE]`: mint a dynamic membership QR token.

What the 悦云 mini-program does every ~30 s, for demos and tests: prints the signed token (one line,
the QR's text) and optionally writes it as a PNG QR code to show to a mirror's camera.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_stub.errors import CloudError
from cloud_stub.member_qr import DEFAULT_TTL_S, MemberQrKeys, key_dir_for


def add_member_qr_command(member_sub: Any, db_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `member qr`."""
    qr = member_sub.add_parser("qr", help="mint a signed, short-lived membership QR token (as the mini-program shows)")
    db_arg(qr)
    qr.add_argument("member_id")
    qr.add_argument("--ttl", type=int, default=DEFAULT_TTL_S, help=f"seconds the token is valid (default {DEFAULT_TTL_S}, max 120)")
    qr.add_argument("--png", type=Path, help="also write the QR code image to this PNG file")


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

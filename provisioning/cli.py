"""`joyprov`: the installer's and field technician's tool.

Flashing, first-boot configuration, enrollment, discovery and diagnosis arrive with the
provisioning issue; today the command answers `--help` and `version` so scripts can probe it.
"""

from __future__ import annotations

import argparse
import sys

VERSION = "0.1.0"


def build_parser() -> argparse.ArgumentParser:
    """The `joyprov` argument parser."""
    parser = argparse.ArgumentParser(
        prog="joyprov",
        description="Provision and service JoyEdge devices (π-POS, 摩镜): flash, configure, enroll, "
        "discover, diagnose. Only `version` is available in this release.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `joyprov` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print(f"joyprov {VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

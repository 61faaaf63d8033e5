"""`joyedge enroll` (device identity, CSR, certificate from the cloud CA). Registered by device.cli."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `joyedge` parser."""

"""Argument and signal helpers shared by the `joyedge` subcommand modules."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any


def add_config_args(p: argparse.ArgumentParser) -> None:
    """--config, --profile and --data-dir, as every device command takes them."""
    p.add_argument("--config", type=Path, help="device config file (TOML; names its profile)")
    p.add_argument("--profile", choices=["mirror", "pos-flagship", "pos-mobile"], help="hardware profile")
    p.add_argument("--data-dir", type=Path, help="device data directory (replica, identity)")


def load_from_args(args: argparse.Namespace, extra: dict[str, Any] | None = None):
    """The resolved DeviceConfig for a command's --config/--profile/--data-dir plus overrides."""
    from device.config import load_config

    overrides: dict[str, Any] = dict(extra or {})
    if getattr(args, "data_dir", None):
        overrides.setdefault("device", {})["data_dir"] = str(args.data_dir)
    return load_config(args.config, profile=args.profile, overrides=overrides)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for a clean shutdown."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop

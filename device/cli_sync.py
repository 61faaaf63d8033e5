"""`joyedge sync`: the sync daemon (a separate process from the device app). Registered by device.cli."""

from __future__ import annotations

import argparse
from typing import Any

from device.cli_common import add_config_args, load_from_args, stop_on_signals


def cmd_sync(args: argparse.Namespace) -> int:
    from device.assemble import open_replica
    from sync.client import SyncClient
    from sync.daemon import SyncDaemon

    extra: dict[str, Any] = {}
    if args.cloud:
        extra["sync"] = {"cloud": args.cloud}
    if args.insecure:
        extra.setdefault("sync", {})["insecure"] = True
    cfg = load_from_args(args, extra)
    replica = open_replica(cfg)
    client = SyncClient(cfg.sync.cloud, insecure=cfg.sync.insecure)
    daemon = SyncDaemon(replica, client, device_id=cfg.device.id, site_id=cfg.device.site_id,
                        store_id=cfg.device.store_id, interval_s=cfg.sync.interval_s)
    try:
        if args.once:
            applied = daemon.sync_once()
            counts = replica.counts()
            print("joyedge sync: applied " + ", ".join(f"{k} {v}" for k, v in applied.items())
                  + " | replica " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        else:
            print(f"joyedge sync: daemon for {cfg.device.id} → {cfg.sync.cloud}", flush=True)
            daemon.run(stop_on_signals())
    finally:
        client.close()
        replica.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `joyedge sync` to the `joyedge` parser."""
    syn = sub.add_parser("sync", help="pull CRM data from the cloud into the device replica")
    add_config_args(syn)
    mode = syn.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="sync until caught up, then exit")
    mode.add_argument("--daemon", action="store_true", help="keep syncing until stopped")
    syn.add_argument("--cloud", help="cloud address HOST:PORT")
    syn.add_argument("--insecure", action="store_true", help="plain-text gRPC (loopback only)")
    syn.set_defaults(func=cmd_sync)

"""`joyedge sync`: the sync daemon (a separate process from the device app). Registered by device.cli."""

from __future__ import annotations

import argparse
import json
from typing import Any

from device.cli_common import add_config_args, load_from_args, stop_on_signals


def _client(cfg: Any) -> tuple[Any, Any]:
    """(SyncClient, the DeviceIdentity it presents or None on an insecure loopback client)."""
    from sync.client import SyncClient

    if cfg.sync.insecure:
        return SyncClient(cfg.sync.cloud, insecure=True), None
    from sync.identity import DeviceIdentity

    ident = DeviceIdentity.load(cfg.identity_dir)
    # The channel follows the identity files (a rotation by admin-serve too) and carries the
    # identity's TLS name override when the cloud's certificate names another host.
    client = SyncClient(cfg.sync.cloud, identity_dir=cfg.identity_dir, identity=ident)
    return client, ident


def cmd_sync(args: argparse.Namespace) -> int:
    from device.assemble import open_replica
    from sync.daemon import SyncDaemon
    from sync.outbox import Outbox, read_status

    extra: dict[str, Any] = {}
    if args.cloud:
        extra["sync"] = {"cloud": args.cloud}
    if args.insecure:
        extra.setdefault("sync", {})["insecure"] = True
    cfg = load_from_args(args, extra)
    replica = open_replica(cfg)
    if args.status:
        try:
            status = read_status(replica)
            outbox = Outbox(replica)
            status["quarantine"] = outbox.quarantined()
            status["compensations"] = outbox.compensations()
            print(json.dumps(status, ensure_ascii=False, indent=2, default=str))
        finally:
            replica.close()
        return 0
    client, ident = _client(cfg)
    # With an identity the daemon rotates the certificate before it expires and rebuilds its client.
    daemon = SyncDaemon(replica, client, device_id=cfg.device.id, site_id=cfg.device.site_id,
                        store_id=cfg.device.store_id, interval_s=cfg.sync.interval_s,
                        metrics_path=cfg.device.data_dir / "sync.prom", identity=ident)
    try:
        if args.once:
            applied = daemon.sync_once()
            counts = replica.counts()
            pushed = daemon.status.pushed
            print("joyedge sync: applied " + ", ".join(f"{k} {v}" for k, v in applied.items())
                  + " | replica " + ", ".join(f"{k} {v}" for k, v in counts.items())
                  + " | pushed " + ", ".join(f"{k} {v}" for k, v in pushed.items())
                  + f" | outbox {daemon.outbox.depth()}", flush=True)
            from device.pos.reconcile import sale_of
            from sync import reconcile_closures

            for comp in daemon.outbox.compensations(unseen_only=True):
                if comp["kind"] == reconcile_closures.KIND:  # the operator closed one (the app acts on it)
                    print(f"joyedge sync: the operator closed {comp['cause_event_id']}: {comp['message']}", flush=True)
                    continue
                sale = sale_of(replica, comp)  # the counter's sale number, as its screen and receipt show it
                print(f"joyedge sync: compensation {comp['kind']} for member {comp['member_id']}"
                      + (f" on sale {sale} (receipt {sale[5:21]})" if sale else "")
                      + f": {comp['message']} ({comp['amount_cents'] / 100:.2f})", flush=True)
        else:
            print(f"joyedge sync: daemon for {cfg.device.id} → {cfg.sync.cloud}", flush=True)
            daemon.run(stop_on_signals())
    finally:
        daemon.close()  # the current client (a rotation may have replaced `client`) and retired ones
        replica.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `joyedge sync` to the `joyedge` parser."""
    syn = sub.add_parser("sync", help="push device events to the cloud and pull CRM data into the replica")
    add_config_args(syn)
    mode = syn.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true", help="push the outbox and pull until caught up, then exit")
    mode.add_argument("--daemon", action="store_true", help="keep syncing until stopped")
    mode.add_argument("--status", action="store_true",
                      help="print the stored sync status, quarantine and compensations as JSON")
    syn.add_argument("--cloud", help="cloud address HOST:PORT")
    syn.add_argument("--insecure", action="store_true", help="plain-text gRPC (loopback only)")
    syn.set_defaults(func=cmd_sync)

"""`joyedge enroll` (device identity, CSR, certificate from the cloud CA). Registered by device.cli.

    joyedge enroll --cloud cloud.example.com:50052 --claim-token T --ca-file ca.pem [--config dev.toml]

`--cloud` is the cloud's *enrollment* port (server-only TLS); the cloud answers with its mTLS port,
which `joyedge sync` then uses (recorded in the identity directory). The CA file is the cloud's
trust anchor, given to the installer (or flashed into the identity directory as `ca.pem`): the
device checks the cloud's certificate before it sends the claim token.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from device.cli_common import add_config_args, load_from_args
from device.errors import DeviceError


def cmd_enroll(args: argparse.Namespace) -> int:
    from sync.identity import CA_FILE, enroll

    cfg = load_from_args(args)
    ca_file: Path = args.ca_file or cfg.identity_dir / CA_FILE
    try:
        ca_pem = ca_file.read_bytes()
    except OSError as err:
        raise DeviceError(
            f"cannot read the cloud CA certificate {ca_file}: {err.strerror}; pass --ca-file "
            "(the ca.pem of `joyedge-cloud ca init`)") from err
    ident = enroll(cfg.identity_dir, args.cloud, args.claim_token, ca_pem=ca_pem,
                   device_id=args.device_id or cfg.device.id, name=args.name, server_name=args.server_name)
    print(f"joyedge enroll: device {ident.device_id} (site {ident.site_id}, store {ident.store_id}) enrolled; "
          f"certificate {ident.serial:x} valid until {ident.not_after:%Y-%m-%d %H:%M} UTC; "
          f"sync over mTLS to {ident.sync_target}", flush=True)
    if (cfg.device.site_id, cfg.device.store_id) != (ident.site_id, ident.store_id):
        print(f"joyedge enroll: note: the config says site {cfg.device.site_id}, store {cfg.device.store_id}; "
              "the certificate decides what this device may sync", flush=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `joyedge enroll` to the `joyedge` parser."""
    enr = sub.add_parser("enroll", help="enroll this device with the cloud (key pair, CSR, mTLS certificate)")
    add_config_args(enr)
    enr.add_argument("--cloud", required=True, help="the cloud's enrollment address HOST:PORT")
    enr.add_argument("--claim-token", required=True, help="single-use token from the operator")
    enr.add_argument("--ca-file", type=Path, help="the cloud's CA certificate (default: <identity dir>/ca.pem)")
    enr.add_argument("--device-id", default="", help="device id (default: the config's device.id)")
    enr.add_argument("--name", default="", help="display name for the registry")
    enr.add_argument("--server-name", default="",
                     help="TLS name of the cloud's certificate, when --cloud is an address it does not name")
    enr.set_defaults(func=cmd_enroll)

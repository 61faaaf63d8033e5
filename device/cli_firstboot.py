"""`joyedge firstboot`: apply the installer's first-boot config once. Registered by device.cli."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def cmd_firstboot(args: argparse.Namespace) -> int:
    from api.firstboot import DONE_FILENAME, FILENAME
    from device.firstboot import find_boot_dir, run_firstboot

    boot_dir = args.boot_dir or find_boot_dir()
    if not (boot_dir / FILENAME).exists() and (boot_dir / DONE_FILENAME).exists():
        print(f"joyedge firstboot: already done ({boot_dir / DONE_FILENAME}); nothing to do")
        return 0
    r = run_firstboot(boot_dir, config_out=args.config_out, data_dir=args.data_dir,
                      system_root=args.system_root, device_id=args.device_id)
    if args.json:
        print(json.dumps(asdict(r), indent=2))
    else:
        print(f"joyedge firstboot: device {r.device_id} (site {r.site_id}, store {r.store_id}) enrolled; "
              f"config {r.config_path}; erased {', '.join(r.erased)} from {boot_dir}")
        print("next: systemctl enable --now joyedge-sync joyedge-run")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `joyedge firstboot` to the `joyedge` parser."""
    from device.firstboot import DEFAULT_CONFIG_OUT, DEFAULT_DATA_DIR

    p = sub.add_parser("firstboot", help="apply the first-boot config from the boot partition, enroll, erase secrets")
    p.add_argument("--boot-dir", type=Path, help="mounted boot partition (default /boot/firmware or /boot)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="device data directory")
    p.add_argument("--config-out", type=Path, default=DEFAULT_CONFIG_OUT, help="device config to write")
    p.add_argument("--system-root", type=Path, default=Path("/"),
                   help="where etc/hostname and the NetworkManager keyfile go (default /)")
    p.add_argument("--device-id", help="device id (default: the hostname, else profile + machine id)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_firstboot)

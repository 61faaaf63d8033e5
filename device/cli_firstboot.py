"""`joyedge firstboot`: apply the installer's first-boot config once. Registered by device.cli."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def cmd_firstboot(args: argparse.Namespace) -> int:
    from api.firstboot import DONE_FILENAME, FILENAME
    from device.errors import DeviceError
    from device.firstboot import find_boot_dir, run_firstboot_retrying
    from device.provisioning_status import FirstbootStatus, write_status

    try:
        boot_dir = args.boot_dir or find_boot_dir()
    except DeviceError as err:
        write_status(args.data_dir, FirstbootStatus("failed", str(err), False, 0))
        raise
    if not (boot_dir / FILENAME).exists() and (boot_dir / DONE_FILENAME).exists():
        print(f"joyedge firstboot: already done ({boot_dir / DONE_FILENAME}); nothing to do")
        return 0
    r = run_firstboot_retrying(boot_dir, config_out=args.config_out, data_dir=args.data_dir,
                               system_root=args.system_root, device_id=args.device_id)
    if args.json:
        print(json.dumps(asdict(r), indent=2))
    else:
        print(f"joyedge firstboot: device {r.device_id} (site {r.site_id}, store {r.store_id}) enrolled; "
              f"config {r.config_path}; erased {', '.join(r.erased)} from {boot_dir}")
        print("next: systemctl enable --now joyedge-sync joyedge-run")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Provisioning state: exit 0 when provisioned, 1 when not (with the reason)."""
    from device.provisioning_status import provisioning

    state = provisioning(args.data_dir, args.config)
    if args.json:
        print(json.dumps(state, ensure_ascii=False, indent=2))
    elif state["provisioned"]:
        print(f"joyedge status: provisioned ({state['config']})")
    else:
        fb = state["firstboot"] or {}
        print(f"joyedge status: NOT PROVISIONED — {state['banner']}")
        if fb:
            print(f"  firstboot: {fb['state']}, {fb['attempts']} attempt(s), "
                  f"{'the next boot retries' if fb['retryable'] else 'not retried: fix and reboot'}")
    return 0 if state["provisioned"] else 1


def cmd_notice(args: argparse.Namespace) -> int:
    """Serve the not-provisioned banner on the kiosk port until stopped, advertised on the LAN."""
    from device.cli_common import stop_on_signals
    from device.notice_advertise import notice_identity
    from device.provisioning_status import NoticeServer, provisioning

    interfaces = args.interface or None
    advertise = not args.no_advertise
    # Advertised, the page must answer the technician's laptop too (notice_url), not only the kiosk browser.
    host = args.host or ((interfaces[0] if interfaces else "0.0.0.0") if advertise else "127.0.0.1")
    identity = notice_identity([args.boot_dir] if args.boot_dir else None, data_dir=args.data_dir) if advertise else None
    server = NoticeServer(args.data_dir, args.config, host=host, port=args.port, advertise=advertise,
                          interfaces=interfaces, identity=identity)
    # SIGTERM (systemctl stop) too must end through stop(): it sends the mDNS goodbye.
    stop = stop_on_signals()
    with server:
        print(f"joyedge firstboot-notice: {provisioning(args.data_dir, args.config)['banner']} "
              f"on http://{host}:{server.port}/"
              f"{', advertised as ' + identity.device_id + '._joyedge._tcp.local.' if identity else ''}", flush=True)
        stop.wait()
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

    st = sub.add_parser("status", help="is this device provisioned? (first-boot outcome and reason; exit 1 when not)")
    st.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="device data directory")
    st.add_argument("--config", type=Path, default=DEFAULT_CONFIG_OUT, help="device config firstboot writes")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_status)

    n = sub.add_parser("firstboot-notice",
                       help="serve 设备未完成初始化 on the kiosk port (the unit runs it while the device is not provisioned)")
    n.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="device data directory")
    n.add_argument("--config", type=Path, default=DEFAULT_CONFIG_OUT, help="device config firstboot writes")
    n.add_argument("--host", help="address to serve on (default 0.0.0.0 when advertised, so `joyprov discover`'s "
                                  "notice_url answers; 127.0.0.1 with --no-advertise)")
    n.add_argument("--port", type=int, default=8080, help="the kiosk port")
    n.add_argument("--interface", action="append", metavar="IP",
                   help="advertise (and bind) only on this address (repeatable; tests use 127.0.0.1)")
    n.add_argument("--no-advertise", action="store_true",
                   help="do not advertise the device as not provisioned over zeroconf")
    n.add_argument("--boot-dir", type=Path,
                   help="boot partition whose first-boot file names the device (default /boot/firmware or /boot)")
    n.set_defaults(func=cmd_notice)

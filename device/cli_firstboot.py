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
    """Serve the not-provisioned banner on the kiosk port until stopped."""
    from device.provisioning_status import NoticeServer, provisioning

    server = NoticeServer(args.data_dir, args.config, host=args.host, port=args.port)
    print(f"joyedge firstboot-notice: {provisioning(args.data_dir, args.config)['banner']} "
          f"on http://{args.host}:{server.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
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
    n.add_argument("--host", default="127.0.0.1", help="address to serve on (the kiosk browser's)")
    n.add_argument("--port", type=int, default=8080, help="the kiosk port")
    n.set_defaults(func=cmd_notice)

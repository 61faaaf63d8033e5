"""`joyedge selftest` and `joyedge print-test` (peripherals and models). Registered by device.cli."""

from __future__ import annotations

import argparse
from pathlib import Path

PERIPHERAL_NAMES = ("camera", "depth_camera", "printer", "scanner", "customer_display", "cash_drawer", "call_button")


def cmd_selftest(args: argparse.Namespace) -> int:
    """Probe peripherals and/or models; exit 1 when anything is missing."""
    from device.config import load_config
    from device.errors import DeviceError
    from device.selftest import failed, render_json, render_table, run_selftest

    if args.unplug and not args.fake_hardware:
        raise DeviceError("--unplug rehearses a missing device with --fake-hardware; pull a real cable instead")
    cfg = load_config(args.config, profile=args.profile)
    rows = run_selftest(cfg, args.target, fake=args.fake_hardware, unplugged=args.unplug or (), runs=args.runs)
    if args.json:
        print(render_json(rows, accelerator=cfg.inference.accelerator, profile=cfg.profile, target=args.target,
                          fake_hardware=args.fake_hardware))
    else:
        print(render_table(rows, accelerator=cfg.inference.accelerator))
    return 1 if failed(rows) else 0


def cmd_print_test(args: argparse.Namespace) -> int:
    """Print the test receipt (Chinese text, QR code, logo, cut) to a printer URI."""
    from drivers.printer import open_printer, sample_receipt

    printer = open_printer(args.printer, paper_mm=args.paper)
    with printer:
        status = printer.status()
        sent = printer.print_receipt(sample_receipt(args.paper, with_logo=not args.no_logo))
    print(f"joyedge print-test: {sent} bytes to {args.printer} ({printer.backend}, {args.paper} mm; "
          f"printer status: {status.state})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the `joyedge` parser."""
    st = sub.add_parser("selftest", help="probe every configured peripheral and model; exit 1 when one is missing")
    st.add_argument("target", nargs="?", choices=["inference", "hardware", "all"], default="all")
    st.add_argument("--config", type=Path, help="device config file (TOML; names its profile)")
    st.add_argument("--profile", choices=["mirror", "pos-flagship", "pos-mobile"], help="hardware profile")
    st.add_argument("--fake-hardware", action="store_true", help="probe the fake twins instead of real devices")
    st.add_argument("--unplug", action="append", choices=PERIPHERAL_NAMES, metavar="NAME",
                    help="with --fake-hardware: start this fake disconnected (repeatable)")
    st.add_argument("--runs", type=int, default=10, help="timed runs per model (median reported)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_selftest)

    pt = sub.add_parser("print-test", help="print a test receipt: GB18030 Chinese, QR code, logo, cut")
    pt.add_argument("--printer", required=True,
                    help="file:/tmp/r.bin | tcp://HOST:9100 | usb:04b8:0202 | serial:/dev/ttyUSB0[?baud=N]")
    pt.add_argument("--paper", type=int, choices=[58, 80], default=80, help="paper width in mm")
    pt.add_argument("--no-logo", action="store_true", help="leave the logo out")
    pt.set_defaults(func=cmd_print_test)



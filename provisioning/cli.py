"""`joyprov`: the installer's and field technician's tool.

Exit codes (also in README): 0 done; 1 a check failed (read-back verification); 2 bad command line;
3 bad input (missing/malformed image, key, file or value); 4 refused for safety (mounted or system
disk, existing key; fix it or pass --force); 5 reading/writing the target failed; 6 discovery saw
fewer devices than --count; 130 interrupted. Progress goes to stderr, results to stdout.
Field service (cli_service.py) uses the same codes: 1 the device could not do it or a self-test
found something missing, 3 no/expired login or a bad value, 4 the device refused, 5 unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provisioning.errors import EXIT_INTERRUPTED, NotFound, ProvisioningError

VERSION = "0.1.0"


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True))


def cmd_flash(args: argparse.Namespace) -> int:
    from provisioning.flash import flash

    r = flash(args.image, args.target, verify=args.verify, force=args.force, progress=not args.quiet)
    if args.json:
        _print_json(vars(r))
    else:
        state = "written and verified" if r.verified else "written (not verified: add --verify)"
        print(f"{r.target}: {r.bytes_written} bytes {state}, sha256 {r.sha256}")
        print(f"next: joyprov configure {r.target} --profile P --cloud HOST:PORT --claim-token T")
    return 0


def cmd_configure(args: argparse.Namespace) -> int:
    from provisioning.configure import build_config, configure

    cfg = build_config(profile=args.profile, cloud=args.cloud, claim_token=args.claim_token,
                       hostname=args.hostname, wifi_ssid=args.wifi_ssid, wifi_psk_file=args.wifi_psk_file,
                       ca_file=args.ca_file)
    w = configure(args.target, cfg, force=args.force)
    if args.json:
        _print_json({"target": w.target, "file": w.file, "bytes": w.bytes,
                     "partition": {"number": w.partition.number, "offset": w.partition.offset,
                                   "type": w.partition.type}})
    else:
        print(f"{w.target}: wrote {w.file} ({w.bytes} bytes) to partition {w.partition.number} "
              f"({w.partition.type}) for a {cfg.profile} enrolling with {cfg.cloud}")
        print("next: put the card in the device and power it on; `joyedge firstboot` enrolls it and "
              "erases the claim token and WiFi passphrase from the card")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from provisioning.configure import list_partitions, read_config

    parts = list_partitions(args.target)
    boot, cfg, problem = read_config(args.target)
    shown = None
    if cfg is not None:
        shown = {"profile": cfg.profile, "cloud": cfg.cloud, "hostname": cfg.hostname,
                 "wifi_ssid": cfg.wifi_ssid, "ca_pem_present": cfg.ca_pem is not None,
                 "claim_token_present": cfg.claim_token is not None,
                 "wifi_psk_present": cfg.wifi_psk is not None}
    if args.json:
        _print_json({"partitions": [vars(p) for p in parts], "boot_partition": boot.number,
                     "firstboot": shown, "problem": problem})
        return 0
    print(f"{'#':>2} {'offset':>12} {'size':>12}  type")
    for p in parts:
        print(f"{p.number:>2} {p.offset:>12} {p.size:>12}  {p.type}{'  (boot)' if p == boot else ''}")
    if shown is None:
        print(f"first-boot config: {problem}; write one with `joyprov configure`")
    else:
        for k, v in shown.items():
            print(f"{k:20} {v}")
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    from provisioning.discover import as_dicts, discover

    devices = discover(args.timeout, count=args.count, interfaces=args.interface or None, site=args.site)
    if args.json:
        _print_json(as_dicts(devices))
    elif not devices:
        print("no JoyEdge devices seen: is this machine on the devices' LAN (same subnet; mDNS "
              "is not routed)? Try a longer --timeout", file=sys.stderr)
    else:
        _print_devices(devices)
    if args.count is not None and len(devices) < args.count:
        raise NotFound(f"saw {len(devices)} of {args.count} devices within {args.timeout:g} s")
    return 0


def _print_devices(devices: list) -> None:
    """The discover table; a device that is not provisioned gets its state and reason on a line below its
    row (a ready device's row is as it always was) and one `next:` hint at the end."""
    from api.discovery import STATE_READY

    rows = [("ID", "PROFILE", "SITE", "VERSION", "ADDRESS", "HOST")]
    rows += [(d.id, d.profile, d.site, d.version,
              f"{d.addresses[0] if d.addresses else '?'}:{d.port}", d.host) for d in devices]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print("  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip())
    for d, r in zip(devices, rows[1:], strict=True):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if d.state != STATE_READY:
            print(f"  {d.state.upper()}: {d.reason or '(no reason given)'}"
                  f"{'  — ' + d.notice_url if d.notice_url else ''}")
    stuck = [d.id for d in devices if d.state != STATE_READY]
    if stuck:
        print(f"next: {', '.join(stuck)} not provisioned: fix the cause and power-cycle (a network failure is "
              "retried at every boot), or write the card again with `joyprov configure TARGET --profile P "
              "--cloud HOST:PORT --claim-token NEW` (`joyprov flash IMAGE TARGET --verify` first to reflash); "
              "the screen shows the same reason")


def cmd_bundle_keygen(args: argparse.Namespace) -> int:
    from provisioning.bundle import keygen

    key, pub = keygen(args.dir)
    print(f"signing key {key} (keep it offline, mode 0600); public key {pub}")
    print(f"next: install {pub.name} on every device as /etc/joyedge/bundle.pub (the pinned key)")
    return 0


def cmd_bundle_build(args: argparse.Namespace) -> int:
    from provisioning.bundle import build

    m = build(models=args.models, config=args.config, version=args.version, key=args.key, out=args.out,
              progress=not args.quiet)
    if args.json:
        _print_json({"out": str(args.out), "kind": m.kind, "version": m.version,
                     "files": [vars(f) for f in m.files]})
    else:
        print(f"{args.out}: {m.kind} bundle {m.version}, {len(m.files)} file(s), signed")
        print(f"next: copy it to the device and run `joyedge bundle install {args.out.name}`")
    return 0


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: `--wifi-psk SECRET` must not be taken as `--wifi-psk-file SECRET`."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The `joyprov` argument parser."""
    parser = _Parser(
        prog="joyprov",
        description="Provision and service JoyEdge devices (π-POS, 摩镜): flash, configure, discover, "
        "sign bundles. Exit codes: 0 ok, 1 check failed, 2 usage, 3 bad input, 4 refused (safety), "
        "5 target I/O, 6 not found, 130 interrupted.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version").set_defaults(
        func=lambda _a: print(f"joyprov {VERSION}") or 0)

    p = sub.add_parser("flash", help="write a raw or .xz image to an SD card / disk or a file")
    p.add_argument("image", type=Path)
    p.add_argument("target", type=Path, help="block device (/dev/sdX, /dev/mmcblk0) or image file")
    p.add_argument("--verify", action="store_true", help="read the target back and compare sha256")
    p.add_argument("--force", action="store_true", help="write even to a mounted or system disk")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_flash)

    p = sub.add_parser("configure", help="write the first-boot config into the image's boot partition")
    p.add_argument("target", type=Path, help="flashed card or image file")
    p.add_argument("--profile", required=True, help="mirror | pos-flagship | pos-mobile")
    p.add_argument("--cloud", required=True, metavar="HOST:PORT", help="the cloud the device enrolls with")
    p.add_argument("--claim-token", required=True, help="one-time claim token from the cloud")
    p.add_argument("--wifi-ssid")
    p.add_argument("--wifi-psk-file", type=Path, help="file whose first line is the WiFi passphrase")
    p.add_argument("--hostname", help="device hostname; also its device id unless the cloud assigns one")
    p.add_argument("--ca-file", type=Path, help="the cloud's CA certificate (ca.pem of `joyedge-cloud ca init`); "
                   "without it the image must carry one in the identity directory")
    p.add_argument("--force", action="store_true", help="write even to a mounted disk")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_configure)

    p = sub.add_parser("inspect", help="list a card's partitions and its first-boot config (secrets hidden)")
    p.add_argument("target", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("discover", help="list JoyEdge devices on this LAN (mDNS _joyedge._tcp)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to listen (default 3)")
    p.add_argument("--count", type=int, help="stop as soon as N devices are seen; exit 6 if fewer")
    p.add_argument("--site", help="only devices of this site (mall); a device that is not provisioned has "
                                  "no site yet: leave --site out to see it")
    p.add_argument("--interface", action="append", metavar="IP",
                   help="listen only on the interface with this address (repeatable)")
    p.add_argument("--json", action="store_true", help="print the devices as a JSON list")
    p.set_defaults(func=cmd_discover)

    b = sub.add_parser("bundle", help="sign model and config bundles")
    bsub = b.add_subparsers(dest="bundle_command", required=True)
    p = bsub.add_parser("keygen", help="write an Ed25519 signing pair DIR/bundle.key + DIR/bundle.pub")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=cmd_bundle_keygen)
    p = bsub.add_parser("build", help="make a signed bundle from a models folder or a config file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--models", type=Path, help="folder of model files")
    src.add_argument("--config", type=Path, help="a device config file (device.toml)")
    p.add_argument("--version", required=True, help="dotted numbers; devices refuse anything not newer")
    p.add_argument("--key", type=Path, required=True, help="DIR/bundle.key")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_bundle_build)

    from provisioning import cli_service  # login, status, selftest, logs, config, restart, reset, rotate-cert

    cli_service.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `joyprov` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ProvisioningError as err:
        print(f"joyprov: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("joyprov: interrupted: a half-written card must be flashed again", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""`joyedge`: the device app, the sync daemon, the demo, models and config tools."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from device.cli_common import add_config_args, load_from_args, stop_on_signals
from device.errors import DeviceError

VERSION = "0.1.0"


def cmd_run(args: argparse.Namespace) -> int:
    from device.app import MirrorApp
    from device.assemble import build_identifier, build_pipeline, open_replica, timezone_of
    from device.mirror.features import build_features
    from drivers.camera import open_camera
    from kiosk_ui.server import KioskServer

    extra: dict[str, Any] = {}
    if args.camera:
        extra["camera"] = {"uri": args.camera}
    if args.port is not None:
        extra["ui"] = {"port": args.port}
    cfg = load_from_args(args, extra)
    if cfg.profile in ("pos-flagship", "pos-mobile"):  # π-POS: its own app (device/pos/run.py)
        from device.pos.run import run_pos

        return run_pos(cfg, camera_uri=args.camera, loop=args.loop, stop=stop_on_signals(),
                       fake_hardware=args.fake_hardware)
    if cfg.profile != "mirror":
        raise DeviceError(f"profile {cfg.profile}: no device app for it")
    from device.health import mirror_peripherals, start_supervisor
    from device.peripherals import build_peripherals

    built = build_peripherals(cfg, fake=args.fake_hardware)
    if args.fake_hardware and not args.camera:
        camera = built["camera"].device  # the fake twin: a developer runs the profile without a camera
    else:
        camera = open_camera(cfg.camera.uri, width=cfg.camera.width, height=cfg.camera.height,
                             fps=cfg.camera.fps, loop=args.loop)
    replica = open_replica(cfg)
    stop = stop_on_signals()
    with KioskServer(cfg.ui.host, cfg.ui.port) as kiosk:
        print(f"joyedge: mirror on {kiosk.url}/mirror", flush=True)
        features = build_features(cfg)
        app = MirrorApp(camera=camera, pipeline=build_pipeline(cfg), replica=replica,
                        identifier=build_identifier(cfg), store_id=cfg.device.store_id,
                        timezone=timezone_of(cfg), publish=kiosk.publish,
                        features=features, on_action=kiosk.on_action)
        # The camera is the app's; the rest (the call button) is probed by the supervisor.
        supervisor = start_supervisor(mirror_peripherals(built),
                                      on_degraded=lambda text, _missing, _name: app.set_degraded(text))
        try:
            app.run(stop)
        finally:
            supervisor.stop()
            features.close()
    replica.close()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from inference.store import ModelStore

    store = ModelStore(args.dir)
    if args.action == "fetch":
        store.fetch(progress=lambda line: print(line, flush=True))
        print(f"models ready in {store.root}")
        return 0
    if args.action == "verify":
        results = store.verify()
        bad = 0
        for r in results:
            print(f"{r.name:20} {r.status:8} {r.path if r.ok else r.message}")
            bad += not r.ok
        if bad:
            print(f"{bad} model(s) missing or corrupt: run `joyedge models fetch`", file=sys.stderr)
        return 1 if bad else 0
    for e in store.entries():
        print(f"{e.name:20} {e.size / 1e6:6.1f} MB  {e.file:45} {e.licence}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from device.config import dump_config, load_config

    cfg = load_config(args.file, profile=args.profile)
    sys.stdout.write(dump_config(cfg))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from device.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(headless=args.headless, duration=args.duration, as_json=args.json,
                                faces=args.faces, port=args.port, workdir=args.workdir,
                                enroll_per_person=args.enroll_per_person))


class _Parser(argparse.ArgumentParser):
    """No abbreviated options: a typo like `--unplug prin` or `--fake` must not silently pick an option."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The `joyedge` argument parser."""
    parser = _Parser(prog="joyedge", description="JoyEdge device software")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the device app (camera → recognition → kiosk screens)")
    add_config_args(run)
    run.add_argument("--camera", help="camera URI: replay:DIR | video:FILE | v4l2:/dev/video0 | picamera2:")
    run.add_argument("--port", type=int, help="kiosk UI port (default from config: 8080)")
    run.add_argument("--loop", action="store_true", help="loop a replay camera")
    run.add_argument("--fake-hardware", action="store_true",
                     help="use the peripherals' fake twins (and a fake camera unless --camera)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="the whole system on this machine: cloud, sync, a mirror, the UI")
    demo.add_argument("--headless", action="store_true", help="no browser; stop after one pass or --duration")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after N seconds (0: headless → one pass)")
    demo.add_argument("--json", action="store_true", help="print one JSON summary at the end")
    demo.add_argument("--faces", type=Path, help="one sub-folder per person: enroll the first photos, replay the rest")
    demo.add_argument("--enroll-per-person", type=int, default=3, help="photos enrolled per person (default 3)")
    demo.add_argument("--port", type=int, default=8080, help="kiosk UI port")
    demo.add_argument("--workdir", type=Path, default=Path("var/demo"), help="where the demo keeps its files")
    demo.set_defaults(func=cmd_demo)

    models = sub.add_parser("models", help="fetch, verify or list the on-device models")
    models.add_argument("action", choices=["fetch", "verify", "list"])
    models.add_argument("--dir", type=Path, help="model directory (default $JOYEDGE_MODEL_DIR or ~/.local/share/joyedge/models)")
    models.set_defaults(func=cmd_models)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    check = csub.add_parser("check", help="validate a device config and print the resolved result")
    check.add_argument("file", type=Path)
    check.add_argument("--profile", choices=["mirror", "pos-flagship", "pos-mobile"])
    check.set_defaults(func=cmd_config)

    # Subcommands that belong to one area live in their own module and register themselves here.
    from device import cli_admin, cli_bundle, cli_enroll, cli_firstboot, cli_hardware, cli_inference, cli_sync

    cli_sync.register(sub)
    cli_enroll.register(sub)
    cli_inference.register(sub)
    cli_hardware.register(sub)
    cli_firstboot.register(sub)
    cli_bundle.register(sub)
    cli_admin.register(sub)  # after run/sync: it gives them log files

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _a: print(f"joyedge {VERSION}") or 0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `joyedge` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except DeviceError as err:
        print(f"joyedge: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # one boundary for our packages' errors: a message, not a traceback
        from drivers.errors import DriverError
        from sync.errors import SyncError

        known: tuple[type[BaseException], ...] = (DriverError, SyncError)
        try:
            from inference.errors import InferenceError
            from kiosk_ui.errors import KioskError

            known += (InferenceError, KioskError)
        except ImportError:
            pass
        if isinstance(err, known):
            print(f"joyedge: error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

"""`joyedge admin-serve`: the device admin API for field technicians (issue 8). Registered by device.cli.

Also gives the long-running commands (`run`, `sync`, `admin-serve`) a rotating log file under
`<data_dir>/logs/`, which the admin API's Logs call reads: `register` wraps their handlers, so
device/cli.py stays as it is.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable
from typing import Any

from device.cli_common import add_config_args, load_from_args, stop_on_signals

log = logging.getLogger(__name__)


def cmd_admin_serve(args: argparse.Namespace) -> int:
    from api.admin import DEFAULT_PORT
    from device.admin.server import AdminServer
    from device.cli import VERSION

    cfg = load_from_args(args)
    interfaces = args.interface or None
    server = AdminServer(cfg, config_path=args.config, version=VERSION,
                         host=args.host or (interfaces[0] if interfaces else "0.0.0.0"),
                         port=DEFAULT_PORT if args.port is None else args.port, advertise=not args.no_advertise,
                         interfaces=interfaces, fake_hardware=args.fake_hardware, restart_command=args.restart_command)
    stop = stop_on_signals()
    with server:
        ident = server.servicer.identity
        print(f"joyedge: admin API of {ident.device_id} (site {ident.site_id}) on {server.host}:{server.port}"
              f"{'' if args.no_advertise else ', advertised as ' + ident.device_id + '._joyedge._tcp.local.'}",
              flush=True)
        stop.wait()
    return 0


def _with_log_file(name: str, func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """`func`, after adding `<data_dir>/logs/<name>.log` to the process's logging."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from device.admin.logfile import setup_file_logging

        try:
            data_dir = load_from_args(args).device.data_dir
        except Exception:  # a bad config: the command itself reports it, with the key named
            return func(args)
        path = setup_file_logging(data_dir, name)
        log.info("joyedge %s started (log file %s)", name, path)
        return func(args)

    return run


def register(sub: Any) -> None:
    """Add `admin-serve`; give `run` and `sync --daemon` their log files."""
    p = sub.add_parser("admin-serve", help="serve the device admin API (mTLS, technician certificates)")
    add_config_args(p)
    p.add_argument("--port", type=int, help="port (default 50443; 0 = a free port, printed)")
    p.add_argument("--host", help="address to bind (default every interface)")
    p.add_argument("--interface", action="append", metavar="IP",
                   help="advertise (and bind) only on this address (repeatable; tests use 127.0.0.1)")
    p.add_argument("--no-advertise", action="store_true", help="do not advertise over zeroconf")
    p.add_argument("--fake-hardware", action="store_true", help="status/selftest probe the fake peripherals")
    p.add_argument("--restart-command", default="",
                   help='what Restart runs, e.g. "systemctl restart joyedge-run.service joyedge-sync.service"')
    p.set_defaults(func=_with_log_file("admin", cmd_admin_serve))
    for name in ("run", "sync"):
        parser = sub.choices.get(name)
        if parser is not None and parser.get_default("func") is not None:
            parser.set_defaults(func=_with_log_file(name, parser.get_default("func")))

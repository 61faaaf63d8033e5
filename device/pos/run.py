"""`joyedge run --profile pos-flagship|pos-mobile`: the π-POS app with both screens on the kiosk server."""

from __future__ import annotations

import threading
from typing import Any

from device.config import DeviceConfig
from device.errors import DeviceError
from drivers.errors import DriverError


def run_pos(cfg: DeviceConfig, *, camera_uri: str | None, loop: bool, stop: threading.Event) -> int:
    """Serve the counter until ``stop``; prints where the two screens are."""
    from device.pos.build import build_pos_app, connect_gateway
    from drivers.camera import open_camera
    from kiosk_ui.server import KioskServer

    camera: Any = None
    if camera_uri:
        camera = open_camera(camera_uri, width=cfg.camera.width, height=cfg.camera.height, fps=cfg.camera.fps,
                             loop=loop)
    gateway = connect_gateway(cfg)
    try:
        with KioskServer(cfg.ui.host, cfg.ui.port) as kiosk:
            try:
                app = build_pos_app(cfg, publish=kiosk.publish, camera=camera, gateway=gateway)
            except DriverError as err:
                raise DeviceError(f"π-POS hardware: {err}") from err
            for view in ("pos-cashier", "pos-customer"):
                kiosk.on_action(view, app.on_action(view))
            print(f"joyedge: π-POS cashier on {kiosk.url}/pos/cashier, customer screen on {kiosk.url}/pos/customer",
                  flush=True)
            try:
                app.run(stop)
            finally:
                app.replica.close()
    finally:
        gateway.close()
    return 0

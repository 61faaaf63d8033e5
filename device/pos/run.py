"""`joyedge run --profile pos-flagship|pos-mobile`: the π-POS app with both screens on the kiosk server."""

from __future__ import annotations

import threading
from typing import Any

from device.config import DeviceConfig
from device.errors import DeviceError
from drivers.errors import DriverError


def run_pos(cfg: DeviceConfig, *, camera_uri: str | None, loop: bool, stop: threading.Event,
            fake_hardware: bool = False) -> int:
    """Serve the counter until ``stop``; prints where the two screens are.

    A PeripheralSupervisor watches the printer and cash drawer through the app's own driver objects and
    the scanner and customer display by presence (the app holds them open); the cameras are the app's.
    With ``fake_hardware`` the peripherals (and the cameras, unless ``camera_uri``) are the fake twins.
    """
    from device.health import start_supervisor
    from device.peripherals import build_peripherals
    from device.pos.build import build_pos_app, connect_gateway
    from drivers.camera import open_camera
    from kiosk_ui.server import KioskServer

    camera: Any = None
    if camera_uri:
        camera = open_camera(camera_uri, width=cfg.camera.width, height=cfg.camera.height, fps=cfg.camera.fps,
                             loop=loop)
    depth: Any = None
    if fake_hardware:
        twins = build_peripherals(cfg, fake=True)
        camera = camera if camera is not None else twins["camera"].device
        depth = twins["depth_camera"].device if "depth_camera" in twins else None
    gateway = connect_gateway(cfg)
    try:
        with KioskServer(cfg.ui.host, cfg.ui.port) as kiosk:
            try:
                app = build_pos_app(cfg, publish=kiosk.publish, camera=camera, depth=depth, gateway=gateway,
                                    fake_hardware=fake_hardware)
            except DriverError as err:
                raise DeviceError(f"π-POS hardware: {err}") from err
            for view in ("pos-cashier", "pos-customer"):
                kiosk.on_action(view, app.on_action(view))
            print(f"joyedge: π-POS cashier on {kiosk.url}/pos/cashier, customer screen on {kiosk.url}/pos/customer",
                  flush=True)
            supervisor = start_supervisor(app.peripherals, held=("scanner", "customer_display"),
                                          on_degraded=lambda text, missing, _name: app.set_health(text, missing))
            try:
                app.run(stop)
            finally:
                supervisor.stop()
                app.replica.close()
    finally:
        gateway.close()
    return 0

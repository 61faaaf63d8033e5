"""Assembling a π-POS from its config: models, cameras, peripherals, the cloud gateway, the app.

Flagship (`pos-flagship`): full-range detector, depth liveness on the configured depth camera, printer,
scanner, customer display and cash drawer. Mobile (`pos-mobile`): short-range detector, challenge
liveness from the face mesh, its printer and scanner. With ``fake_hardware`` the peripherals are their
twins in the tree (device.peripherals). The camera and depth camera can be given (tests, the demo).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.assemble import build_identifier, build_pipeline, open_replica, timezone_of
from device.config import DeviceConfig
from device.errors import DeviceError
from device.pos.app import PosApp
from device.pos.face import FaceCheck
from device.pos.payment import PaymentGateway
from drivers.errors import DriverError

_LOG = logging.getLogger(__name__)


def load_catalog(cfg: DeviceConfig) -> dict[str, tuple[str, int]]:
    """``<data_dir>/catalog.json`` ({"code": ["name", cents]}) when present, else empty."""
    path = Path(cfg.device.data_dir) / "catalog.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): (str(v[0]), int(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise DeviceError(f"{path}: not a catalogue of {{code: [name, cents]}}: {err}") from err


def connect_gateway(cfg: DeviceConfig) -> PaymentGateway:
    """The Payment/Credit gateway to the configured cloud (mTLS unless [sync] insecure on loopback)."""
    return PaymentGateway.connect(cfg.sync.cloud, device_id=cfg.device.id, store_id=cfg.device.store_id,
                                  insecure=cfg.sync.insecure, identity_dir=cfg.identity_dir)


def build_pos_app(cfg: DeviceConfig, *, publish: Callable[[str, dict[str, Any]], None], camera: Any = None,
                  depth: Any = None, fake_hardware: bool = False, gateway: PaymentGateway | None = None,
                  replica: Any = None, actions: list[str] | None = None) -> PosApp:
    """A ready π-POS app (not running). Peripherals not configured are None."""
    from device.peripherals import build_peripherals
    from drivers.camera import open_camera
    from drivers.camera.depth import open_depth_camera
    from inference.landmarks import FaceLandmarker
    from inference.store import ModelStore

    if cfg.profile not in ("pos-flagship", "pos-mobile"):
        raise DeviceError(f"profile {cfg.profile} is not a π-POS")
    pipeline = build_pipeline(cfg)
    if camera is None:
        camera = open_camera(cfg.camera.uri, width=cfg.camera.width, height=cfg.camera.height, fps=cfg.camera.fps)
    method = "depth" if cfg.profile == "pos-flagship" else "challenge"
    landmarker = None
    if method == "depth" and depth is None:
        if cfg.depth_camera is None:
            raise DeviceError("the flagship pays by face only with a depth camera: configure [depth_camera]")
        depth = open_depth_camera(cfg.depth_camera.uri, width=cfg.depth_camera.width, height=cfg.depth_camera.height)
    if method == "challenge":
        landmarker = FaceLandmarker.from_store(ModelStore(cfg.inference.model_dir), accelerator=cfg.inference.accelerator)
    identifier = build_identifier(cfg)
    face = FaceCheck(detector=pipeline.detector, embedder=pipeline.embedder, gallery=identifier.gallery,
                     method=method, landmarker=landmarker, depth=depth if method == "depth" else None,
                     actions=actions)
    built = build_peripherals(cfg, fake=fake_hardware)
    parts = {k: v.device for k, v in built.items() if k in ("printer", "scanner", "customer_display", "cash_drawer")}
    lost: set[str] = set()
    for name in ("scanner", "customer_display"):
        if parts.get(name) is not None:
            try:
                parts[name].open()
            except DriverError as err:  # the supervisor's job to report; the counter still works
                _LOG.warning("%s: %s", name, err)
                lost.add(name)  # kept: the app reopens it when the supervisor sees it back
    scanner = parts.get("scanner")
    app = PosApp(replica=replica or open_replica(cfg), identifier=identifier, face=face, camera=camera,
                  gateway=gateway, publish=publish, device_id=cfg.device.id, store_id=cfg.device.store_id,
                  printer=parts.get("printer"), drawer=parts.get("cash_drawer"), display=parts.get("customer_display"),
                  scanner=scanner, catalog=load_catalog(cfg), timezone=timezone_of(cfg))
    app.lost |= lost
    app.peripherals = {k: built[k] for k in parts}  # the very driver objects the app uses, for the supervisor
    return app

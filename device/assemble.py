"""Assembling a device from its config: replica, gallery, camera, face pipeline, kiosk screens."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from device.config import DeviceConfig
from device.errors import DeviceError
from device.gallery import Gallery
from device.identity import Identifier
from sync.crypto import TemplateCipher
from sync.replica import Replica

_LOG = logging.getLogger(__name__)


def open_replica(cfg: DeviceConfig) -> Replica:
    """The device's SQLite replica with its template cipher."""
    return Replica(cfg.db_path, TemplateCipher(cfg.identity_dir))


def timezone_of(cfg: DeviceConfig) -> ZoneInfo | None:
    """The store's time zone (greetings follow local time); None falls back to the system's."""
    try:
        return ZoneInfo(cfg.device.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        _LOG.warning("unknown time zone %r; using the system's local time", cfg.device.timezone)
        return None


def build_identifier(cfg: DeviceConfig) -> Identifier:
    """An empty gallery and the configured open-set thresholds."""
    return Identifier.from_config(Gallery(build_in_background=True), cfg.identity)


def build_pipeline(cfg: DeviceConfig):  # -> inference.pipeline.FacePipeline
    """Detector (short or full range by profile), embedder and tracker from the model store."""
    from inference.detector import BlazeFaceDetector
    from inference.embedder import FaceEmbedder
    from inference.errors import InferenceError
    from inference.pipeline import FacePipeline
    from inference.store import ModelStore

    try:
        store = ModelStore(cfg.inference.model_dir)
        detector = BlazeFaceDetector.from_store(store, variant=cfg.inference.detector,
                                                accelerator=cfg.inference.accelerator)
        embedder = FaceEmbedder.from_store(store)
    except InferenceError as err:
        raise DeviceError(str(err)) from err
    return FacePipeline(detector, embedder)


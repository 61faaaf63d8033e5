"""The mirror's optional features, bundled for `device.app.MirrorApp`, and how to build them from a config.

Every member is optional: a mirror without a cloud channel has no car finder (the button answers
"unavailable"), one without the landmark model cannot enroll, one without the attribute models shows
the generic content and counts traffic without age and gender.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from device.errors import DeviceError
from device.mirror.content import DEFAULT_RULES, ContentRule
from sync.errors import SyncError

_LOG = logging.getLogger(__name__)


@dataclass
class ShopperAttributes:
    """What the mirror estimates of one face, in RAM for the length of its track only."""

    age_band: str | None = None
    gender: str | None = None
    orientation: str | None = None


@dataclass
class MirrorFeatures:
    """Enrollment flow, car finder, content rules, traffic counters, attribute model, scanner."""

    enrollment: Any = None        # device.mirror.enrollment.EnrollmentFlow (built by the app when None and
    landmarker: Any = None        # a landmarker is given: the flow needs the pipeline's detector/embedder)
    car_finder: Any = None        # device.mirror.find_car.CarFinder
    content_rules: tuple[ContentRule, ...] = DEFAULT_RULES
    attributes: Any = None        # inference.attributes.AttributeModel
    traffic: Any = None           # device.mirror.traffic.TrafficAggregator (built by the app when None)
    scanner: Any = None           # drivers.scanner.base.Scanner, opened by the caller
    member_codes: Any = None      # device.mirror.member_qr.MemberCodeVerifier (no verifier: every code refused)
    device_name: str = ""

    def shopper(self, rgb: np.ndarray, detection: Any) -> ShopperAttributes:
        """Age band, gender and head orientation of one detected face (what is available)."""
        from inference.attributes import head_orientation
        from inference.errors import InferenceError

        out = ShopperAttributes(orientation=head_orientation(True, keypoints=getattr(detection, "keypoints", None)))
        if self.attributes is not None:
            try:
                face = self.attributes.face(rgb, detection.box)
                out.age_band, out.gender = face.age_band, face.gender
            except (InferenceError, RuntimeError, ValueError) as err:  # dlib raises RuntimeError on odd boxes
                _LOG.debug("attributes: %s", err)
        return out

    def close(self) -> None:
        """Release what was opened for the features (the car finder's channel)."""
        if self.car_finder is not None:
            self.car_finder.close()


def build_features(cfg: Any) -> MirrorFeatures:
    """The features a mirror's config allows: models from its model store, the cloud channel of its sync
    settings (mTLS with the enrolled identity, or plain text on loopback), content rules beside its data."""
    from device.mirror.content import RULES_FILE, load_rules
    from device.mirror.find_car import CarFinder
    from device.mirror.member_qr import KeyFetcher, build_verifier
    from inference.errors import InferenceError
    from inference.store import ModelStore

    store = ModelStore(cfg.inference.model_dir)
    features = MirrorFeatures(content_rules=load_rules(cfg.device.data_dir / RULES_FILE), device_name=cfg.device.id)
    try:
        from inference.landmarks import FaceLandmarker

        features.landmarker = FaceLandmarker.from_store(store, accelerator=cfg.inference.accelerator)
    except InferenceError as err:
        _LOG.warning("mirror: enrollment unavailable (%s)", err)
    try:
        from inference.attributes import AttributeModel

        features.attributes = AttributeModel(store)
    except (InferenceError, OSError) as err:
        _LOG.warning("mirror: age/gender unavailable, generic content only (%s)", err)
    fetcher = None
    try:
        if cfg.sync.insecure:
            features.car_finder = CarFinder(cfg.sync.cloud, insecure=True)
            fetcher = KeyFetcher(cfg.sync.cloud, cfg.device.site_id, insecure=True)
        else:
            from sync.identity import DeviceIdentity

            DeviceIdentity.load(cfg.identity_dir)  # not enrolled: say so now, not at the first lookup
            # Both follow the identity files: a certificate rotated by the sync daemon or admin-serve
            # is presented from the next call on (sync.channel), no restart needed.
            features.car_finder = CarFinder(cfg.sync.cloud, identity_dir=cfg.identity_dir)
            fetcher = KeyFetcher(cfg.sync.cloud, cfg.device.site_id, identity_dir=cfg.identity_dir)
    except (SyncError, DeviceError, ValueError, OSError) as err:  # not enrolled yet, unreadable key: still greets
        _LOG.warning("mirror: find my car and member-QR key refresh unavailable (%s)", err)
    # Offline or not enrolled, the verifier still checks codes against the keys cached by an earlier run.
    features.member_codes = build_verifier(cfg, fetcher)
    return features

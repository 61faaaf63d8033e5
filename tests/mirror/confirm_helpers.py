"""Helpers of the phone-digits tests (tests/mirror/test_mirror_confirm.py, test_confirm_units.py): an
identifier with the shipped thresholds that follow the gallery's size, and made-up members that make a
site "large"."""

from __future__ import annotations

import numpy as np

from api.v1 import crm_pb2, sync_pb2
from device.config import IdentityConfig
from device.gallery import Gallery
from device.identity import Identifier
from sync.replica import Replica

PADDING = 2_000  # made-up templates: with the shipped tail the greeting threshold rises to ~0.977


def sized_identifier() -> Identifier:
    """An identifier with the shipped [identity] defaults: the greeting threshold rises with the gallery."""
    return Identifier.from_config(Gallery(), IdentityConfig())


def unit_vectors(n: int, seed: int) -> np.ndarray:
    """``n`` random unit vectors in the embedding's 128 dimensions (float32)."""
    vectors = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def add_templates(replica: Replica, rows: list[tuple[str, str, np.ndarray]]) -> None:
    """(template_id, member_id, vector) rows applied as one pulled templates batch, after the stored cursor."""
    seq = replica.cursors().get(sync_pb2.STREAM_TEMPLATES, 0)
    changes = [sync_pb2.Change(seq=seq + i + 1, key=tid, template=crm_pb2.FaceTemplate(
        template_id=tid, member_id=mid, model="dlib_resnet_v1", vector=np.asarray(v, np.float32).tobytes(),
        consent_id=f"consent-{tid}", created_at_ms=1, weight=1.0)) for i, (tid, mid, v) in enumerate(rows)]
    replica.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_TEMPLATES, changes=changes,
                                             next_seq=seq + len(rows)))


def pad_gallery(replica: Replica, n: int = PADDING, seed: int = 7) -> None:
    """``n`` templates of random unit vectors for made-up members: they never match a face, they only count."""
    add_templates(replica, [(f"pad-t{i}", f"pad-m{i}", v) for i, v in enumerate(unit_vectors(n, seed))])

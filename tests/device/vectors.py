"""Unit vectors for identification tests: a member's direction and a probe at an exact cosine from it."""

from __future__ import annotations

import numpy as np


def unit(v) -> np.ndarray:
    """``v`` as a float32 unit vector."""
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def near(base: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector at exactly cosine ``cos`` from ``base``."""
    other = np.random.default_rng(seed).normal(size=base.size)
    other = unit(other - other.dot(base) * base)
    return unit(cos * base + np.sqrt(1 - cos**2) * other)

"""Fixtures for the inference tests: the installed model store and models loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.store import ModelStore


@pytest.fixture(scope="session")
def model_store() -> ModelStore:
    """The default model store; fails loudly unless every model verifies."""
    store = ModelStore()
    bad = [r.message for r in store.verify() if not r.ok]
    if bad:
        pytest.fail("models are missing or corrupt, run `make models`:\n" + "\n".join(bad))
    return store


@pytest.fixture(scope="session")
def detector(model_store):
    """The short-range BlazeFace detector on the CPU."""
    from inference.detector import BlazeFaceDetector

    return BlazeFaceDetector.from_store(model_store, variant="short", accelerator="cpu")


@pytest.fixture(scope="session")
def embedder(model_store):
    """The dlib ResNet embedder."""
    from inference.embedder import FaceEmbedder

    return FaceEmbedder.from_store(model_store)


@pytest.fixture(scope="session")
def lfw(shared_data: Path) -> dict[str, list[Path]]:
    """LFW photos by identity, sorted by file name (10 identities x 10 photos)."""
    root = shared_data / "lfw_original_10id"
    people = {p.name: sorted(p.glob("*.jpg")) for p in sorted(root.iterdir()) if p.is_dir()}
    if not people:
        pytest.fail(f"no LFW photos under {root}")
    return people

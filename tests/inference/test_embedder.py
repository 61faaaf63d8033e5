"""dlib embeddings: unit length, same person closer than different people."""

from __future__ import annotations

import numpy as np

from inference.embedder import EMBEDDING_MODEL, FaceEmbedder
from inference.image import load_image


def test_johns_same_person_more_similar_than_different(embedder: FaceEmbedder, shared_data):
    """GIVEN dlib's aligned 150x150 chips of 5 Johns THEN every person's mean same-person similarity
    exceeds their mean similarity to everyone else, and nearest-neighbour identification is right."""
    root = shared_data / "dlib_johns_5id"
    people = sorted(p for p in root.iterdir() if p.is_dir())
    embs = {p.name: np.stack([embedder.embed_chip(load_image(f)) for f in sorted(p.glob("*.jpg"))[:3]])
            for p in people}
    assert EMBEDDING_MODEL == "dlib_resnet_v1"
    for name, e in embs.items():
        assert e.dtype == np.float32 and e.shape == (3, 128)
        assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
        same = (e @ e.T)[np.triu_indices(3, 1)].mean()
        other = np.mean([(e @ o.T).mean() for n, o in embs.items() if n != name])
        assert same > other, name


def test_lfw_identification_from_detected_faces(detector, embedder, lfw):
    """GIVEN one enrolled LFW photo per identity WHEN probing with two others THEN rank-1 >= 90 %."""
    def embed(path):
        img = load_image(path)
        det = max(detector.detect(img), key=lambda d: d.width)
        return embedder.embed(img, det.box)

    gallery = {name: embed(paths[0]) for name, paths in lfw.items()}
    names = list(gallery)
    matrix = np.stack([gallery[n] for n in names])
    correct = total = 0
    for name, paths in lfw.items():
        for path in paths[1:3]:
            correct += names[int(np.argmax(matrix @ embed(path)))] == name
            total += 1
    assert correct >= 0.9 * total


def test_embed_many(detector, embedder, lfw):
    img = load_image(lfw["Hugo_Chavez"][0])
    boxes = [d.box for d in detector.detect(img)]
    out = embedder.embed_many(img, boxes)
    assert out.shape == (len(boxes), 128)
    assert embedder.embed_many(img, []).shape == (0, 128)

"""The one exception root of the inference package and its subclasses.

Library errors (pip, zipfile, tarfile, Pillow, LiteRT, ONNX Runtime, dlib) are translated into these at
one boundary each, with ``raise ... from err``. Every message says what happened and what to do.
"""

from __future__ import annotations

FETCH_HINT = "run `joyedge models fetch`"


class InferenceError(Exception):
    """Root of every error raised by :mod:`inference`."""


class ModelMissingError(InferenceError):
    """A model file is not in the model directory."""


class ModelCorruptError(InferenceError):
    """A model file is present but its size or sha256 differs from the manifest."""


class ImageError(InferenceError):
    """An image could not be decoded (truncated, empty, not an image, too large)."""


class AcceleratorError(InferenceError):
    """An accelerator (Edge TPU) was required explicitly and is not usable."""

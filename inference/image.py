"""Decoding photos into RGB arrays: EXIF orientation applied, any mode converted, bad files refused.

Pillow errors become :class:`~inference.errors.ImageError` here, naming the file.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.errors import ImageError

# Larger images are refused as decompression bombs (a 40 MP camera frame is far beyond our cameras).
MAX_PIXELS = 40_000_000


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB ``uint8`` array of shape (H, W, 3).

    EXIF orientation is applied; grayscale, palette, RGBA, CMYK and 16-bit images are converted; the
    container is sniffed, not guessed from the suffix. Raises ImageError naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageError(f"cannot read image {path} ({err.strerror or err}): check the path") from err
    return decode_image(data, str(path))


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, WebP, ...) as :func:`load_image` does; ``name`` is for errors."""
    if not data:
        raise ImageError(f"image {name} is empty (0 bytes): re-capture or re-upload it")
    try:
        with warnings.catch_warnings():
            # Pillow warns before it errors on bombs; we enforce our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise ImageError(
                        f"image {name} is {width}x{height} = {width * height / 1e6:.0f} MP, over the "
                        f"{MAX_PIXELS / 1e6:.0f} MP limit (decompression bomb?): downscale it first"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode == "I;16" or img.mode == "I":
                    # 16-bit grayscale: scale to 8 bits instead of clipping.
                    arr16 = np.asarray(img, dtype=np.float32)
                    gray = np.clip(arr16 / max(float(arr16.max()), 1.0) * 255.0, 0, 255).astype(np.uint8)
                    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
                rgb = img.convert("RGB")
                return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"{name} is not an image Pillow can read: check the file") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"image {name} is damaged or truncated ({err}): re-capture or re-upload it") from err

"""load_image / decode_image: every mode becomes RGB uint8, bad files become ImageError naming the file."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference.errors import ImageError
from inference.image import MAX_PIXELS, decode_image, load_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_lfw_photo_is_rgb_uint8(lfw):
    arr = load_image(lfw["Tony_Blair"][0])
    assert arr.shape == (250, 250, 3) and arr.dtype == np.uint8


def test_truncated_jpeg_names_the_file(lfw, tmp_path):
    data = lfw["Tony_Blair"][0].read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="cut.jpg"):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg is empty"):
        load_image(path)


def test_text_file_renamed_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo\n")
    with pytest.raises(ImageError, match=r"notes\.jpg is not an image"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="nothere.jpg"):
        load_image(tmp_path / "nothere.jpg")


def test_cmyk_jpeg_becomes_rgb():
    img = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    arr = decode_image(_encode(img, "JPEG", quality=95), "cmyk.jpg")
    assert arr.shape == (30, 40, 3)
    r, g, b = arr[15, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_rgba_png_drops_alpha():
    img = Image.new("RGBA", (20, 10), (10, 200, 30, 128))
    arr = decode_image(_encode(img, "PNG"), "rgba.png")
    assert arr.shape == (10, 20, 3) and tuple(arr[5, 5]) == (10, 200, 30)


def test_grayscale_becomes_three_equal_channels():
    img = Image.new("L", (8, 6), 77)
    arr = decode_image(_encode(img, "PNG"), "gray.png")
    assert arr.shape == (6, 8, 3) and (arr == 77).all()


def test_webp_under_a_jpg_name(tmp_path):
    path = tmp_path / "really_webp.jpg"
    path.write_bytes(_encode(Image.new("RGB", (16, 16), (0, 0, 255)), "WEBP", lossless=True))
    assert tuple(load_image(path)[8, 8]) == (0, 0, 255)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    arr = decode_image(_encode(img, "JPEG", exif=exif), "rotated.jpg")
    assert arr.shape == (40, 20, 3)


def test_decompression_bomb_is_refused():
    side = int(MAX_PIXELS**0.5) + 100
    data = _encode(Image.new("1", (side, side)), "PNG")
    with pytest.raises(ImageError, match="bomb.png .*MP"):
        decode_image(data, "bomb.png")

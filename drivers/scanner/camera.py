"""QR codes and barcodes read from camera frames with pyzbar (libzbar0).

The same code seen in consecutive frames is one scan: it is reported again only after it has
been out of view for `REPEAT_AFTER_S` (frame timestamps, not the wall clock).
"""

from __future__ import annotations

import logging

import numpy as np

from drivers.camera.base import CameraSource
from drivers.errors import CameraError, DriverUnavailableError, PeripheralMissingError, ScannerError
from drivers.scanner.base import Scanner, accept

_LOG = logging.getLogger(__name__)

REPEAT_AFTER_S = 1.5
HINT = "pyzbar needs libzbar0: `apt-get install libzbar0` (tools/bootstrap-system.sh) and `pip install pyzbar`"


def decode_image(image: np.ndarray) -> list[str]:
    """Every code pyzbar finds in an RGB or grey image, as text (invalid ones dropped)."""
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as err:  # OSError/ImportError: the shared library is missing
        raise DriverUnavailableError(HINT) from err
    grey = image if image.ndim == 2 else (image[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    out = []
    for sym in pyzbar.decode(grey):
        try:
            code = accept(sym.data.decode("utf-8"), "camera")
        except UnicodeDecodeError:
            _LOG.warning("scanner camera: ignoring a %s code that is not UTF-8", sym.type)
            continue
        if code is not None:
            out.append(code)
    return out


class CameraScanner(Scanner):
    """Codes held up to a camera (the π-POS's own RGB camera, or a dedicated one)."""

    backend = "camera"

    def __init__(self, camera: CameraSource) -> None:
        self.camera = camera
        self.source = getattr(camera, "name", "camera")
        self._last_seen: dict[str, float] = {}

    def open(self) -> None:
        decode_image(np.zeros((8, 8), np.uint8))  # fail now, with the hint, if libzbar is missing
        try:
            self.camera.open()
        except CameraError as err:
            raise PeripheralMissingError(f"scanner camera: {err}") from err

    def read(self, timeout: float) -> list[str]:
        try:
            frame = self.camera.read()
        except CameraError as err:
            raise PeripheralMissingError(f"scanner camera: {err}") from err
        if frame is None:
            raise ScannerError("scanner camera: the frame source ended")
        out = []
        for code in decode_image(frame.image):
            last = self._last_seen.get(code)
            if last is None or frame.timestamp - last > REPEAT_AFTER_S:
                out.append(code)
            self._last_seen[code] = frame.timestamp
        return out

    def close(self) -> None:
        self.camera.close()

"""The π-POS part of `joyedge demo`: an enrolled flagship counter and a scripted shopper.

The shopper (a member of the demo cast, shown by a photo not used for enrollment) buys for 128.00 and
pays by face; then somebody holds the same member's photo up to the camera (the depth module sees a
flat surface) and is refused; then a cash sale. Each attempt goes through the real checkout, cloud
Authorize/Capture over mTLS, receipts on the fake printer, and the screens on the demo's kiosk server.
The depth frames are what a registered depth module would report for a face (relief) or a photo
(flat); they are synthesised in memory, never written to disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivers.camera.depth import DepthFrame, DepthSource

_LOG = logging.getLogger(__name__)
PAUSE_S = 2.0  # between scripted taps when a person watches (0 headless)


class ScriptedDepth(DepthSource):
    """A depth module registered to the RGB camera, showing one scripted scene (a face or a photo)."""

    name = "scripted-depth"

    def __init__(self) -> None:
        self.frame: np.ndarray | None = None

    def show(self, rgb: np.ndarray, detector: Any, relief_mm: float) -> None:
        """Relief around the largest face of ``rgb`` (0 = a flat photo), at 640x480."""
        face = max(detector.detect(rgb), key=lambda f: f.width * f.height)
        h, w = rgb.shape[:2]
        sx, sy = 640 / w, 480 / h
        x0, y0, x1, y1 = face.box[0] * sx, face.box[1] * sy, face.box[2] * sx, face.box[3] * sy
        nx, ny = face.keypoints[2][0] * sx, face.keypoints[2][1] * sy
        ys, xs = np.mgrid[0:480, 0:640].astype(np.float64)
        r2 = ((xs - (x0 + x1) / 2) / ((x1 - x0) / 2)) ** 2 + ((ys - (y0 + y1) / 2) / ((y1 - y0) / 2)) ** 2
        depth = np.where(r2 < 1.2, 600.0, 2500.0)
        if relief_mm:
            depth -= np.where(r2 < 1, 20 * np.sqrt(np.clip(1 - r2, 0, 1)), 0)
            depth -= relief_mm * np.exp(-(((xs - nx) / ((x1 - x0) * 0.075)) ** 2 + ((ys - ny) / ((y1 - y0) * 0.075)) ** 2))
        self.frame = depth.astype(np.uint16)

    def open(self) -> None:
        pass

    def read(self) -> DepthFrame | None:
        return None if self.frame is None else DepthFrame(self.frame, time.monotonic(), 0)

    def close(self) -> None:
        pass


class _Camera:
    """The counter's RGB camera in the demo: shows whoever the script puts in front of it."""

    name = "scripted"

    def __init__(self) -> None:
        self.image: np.ndarray | None = None

    def open(self) -> None:
        pass

    def read(self) -> Any:
        from drivers.camera.base import Frame

        time.sleep(0.02)
        return None if self.image is None else Frame(image=self.image, timestamp=time.monotonic(), index=0, meta={})

    def close(self) -> None:
        pass


def pick_shopper(report: dict[str, Any], cast: Path) -> tuple[str, np.ndarray] | None:
    """(member_id, a photo of them not used for enrollment, or a changed view of one that was)."""
    from device.demo import _augment
    from drivers.camera.replay import decode_still, list_stills

    for m in report.get("members", []):
        if not m.get("person") or not m.get("templates"):
            continue
        photos = [p for p, _ in list_stills(cast / m["person"])]
        rest = [p for p in photos if p.name not in set(m.get("enrolled", []))]
        image = decode_still(rest[-1]) if rest else (decode_still(photos[0]) if photos else None)
        if image is not None:
            return m["member_id"], image if rest else _augment(image, 0)
    return None


def run_pos_script(app: Any, shopper: tuple[str, np.ndarray], *, headless: bool, stop: threading.Event,
                   say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Drive the scripted shopper through the app; returns the payments for the demo summary."""
    member_id, image = shopper
    camera, depth = _Camera(), ScriptedDepth()
    app.camera, app.face.depth = camera, depth
    pause = 0.0 if headless else PAUSE_S
    payments: list[dict[str, Any]] = []

    def tap(view: str, action: dict[str, Any]) -> None:
        app.handle(view, action)
        if pause and not stop.is_set():
            stop.wait(pause)

    def attempt(label: str, relief_mm: float, amount: int) -> None:
        tap("pos-cashier", {"action": "new"})
        tap("pos-cashier", {"action": "amount", "cents": amount})
        camera.image = image
        depth.show(image, app.face.detector, relief_mm)
        tap("pos-customer", {"action": "face"})
        app.run_face_step()
        co = app.checkout
        if co.state == "phone":
            phone = (app.replica.member(co.candidates[0].member_id) or {}).get("phone_last4", "")
            tap("pos-customer", {"action": "phone", "digits": phone})
        if co.state == "confirm":
            tap("pos-customer", {"action": "confirm"})
        out = co.outcome()
        sale = out.get("sale") if out["state"] == "paid" else None
        payments.append({"attempt": label, "method": "face", "amount": round(out["due_cents"] / 100, 2),
                         "mode": sale["mode"] if sale else ("offline" if app.offline else "online"),
                         "status": "approved" if sale else "refused", "member": out["member_id"] or "",
                         "reason": out["message"] if not sale else ""})
        say(f"π-POS: {label}: {payments[-1]['status']} {payments[-1]['amount']:.2f} ({payments[-1]['mode']})"
            + (f" — {out['message']}" if not sale else ""))
        camera.image = None

    rounds = 0
    while not stop.is_set():
        attempt("pay-by-face", 25.0, 12800)
        attempt("spoof: photo held up (flat depth)", 0.0, 12800)
        tap("pos-cashier", {"action": "new"})
        tap("pos-cashier", {"action": "amount", "cents": 3550})
        tap("pos-cashier", {"action": "cash"})
        cash = app.checkout.outcome().get("sale")
        payments.append({"attempt": "cash", "method": "cash", "amount": 35.5, "mode": "cash",
                         "status": "approved" if cash else "refused", "member": "", "reason": ""})
        rounds += 1
        if headless or rounds >= 50:
            break
        stop.wait(10.0)
    return payments

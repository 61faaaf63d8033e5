"""`joyedge run` health: the supervisor's degraded line reaches the screens while the app keeps working,
goes away on replug, and the app's own loop pings systemd's watchdog (a real notify socket)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sync.notify
from device import peripherals as per
from device.app import MirrorApp
from device.assemble import build_identifier, build_pipeline, open_replica, timezone_of
from device.config import load_config
from device.health import mirror_peripherals, start_supervisor
from device.peripherals import build_peripherals
from device.pos.build import build_pos_app
from drivers.camera.depth import FakeDepthCamera
from drivers.camera.fake import FakeCamera, pattern_frame
from kiosk_ui.contract import validate_mirror_model
from kiosk_ui.pos_contract import validate_pos_model

CODE = "6901234567892"


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(per, "POLL_S", 0.02)
    monkeypatch.setattr(per, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(per, "BACKOFF_MAX_S", 0.04)


class Screens:
    """What the kiosk would receive (validated like KioskServer.publish), awaitable by predicate."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()

    def __call__(self, view: str, model: dict[str, Any]) -> None:
        (validate_mirror_model(model) if view == "mirror" else validate_pos_model(view, model))
        with self._cond:
            self.models[view] = model
            self._cond.notify_all()

    def wait(self, view: str, pred: Callable[[dict[str, Any]], bool], timeout: float = 20) -> dict[str, Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: view in self.models and pred(self.models[view]), timeout), \
                self.models.get(view)
            return self.models[view]


class Frames:
    """An endless test pattern that tells, at every read, how many frames the app has processed.

    The app runs unpaced, so the capture thread reads a frame only when the loop took the last one:
    reads go on exactly as long as processing does.
    """

    def __init__(self) -> None:
        self.app: Any = None
        self.processed = 0
        self._cond = threading.Condition()

    def __iter__(self):
        frame = pattern_frame()
        while True:
            with self._cond:
                self.processed = self.app.stats.frames if self.app is not None else 0
                self._cond.notify_all()
            yield frame

    def wait_processed(self, n: int, timeout: float = 20) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.processed >= n, timeout), self.processed


def _config(tmp_path: Path, profile: str) -> Any:
    data = tmp_path / "data"
    data.mkdir()
    (data / "catalog.json").write_text(json.dumps({CODE: ["可乐", 350]}), encoding="utf-8")
    f = tmp_path / "device.toml"
    f.write_text(f'profile = "{profile}"\n[device]\ndata_dir = "{data}"\n', encoding="utf-8")
    return load_config(f)


def _start(target: Callable[[threading.Event], Any]) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_pos_cashier_names_the_missing_printer_and_scanner_and_keeps_selling(tmp_path):
    cfg = _config(tmp_path, "pos-flagship")
    screens = Screens()
    app = build_pos_app(cfg, publish=screens, camera=FakeCamera([]), depth=FakeDepthCamera(), fake_hardware=True)
    sup = start_supervisor(app.peripherals, held=("scanner", "customer_display"),
                           on_degraded=lambda text, missing, _n: app.set_health(text, missing))
    stop, thread = _start(app.run)
    try:
        for name in app.peripherals:
            assert sup.wait_for(name, "ok", 10)
        cashier = lambda: screens.models["pos-cashier"]  # noqa: E731
        screens.wait("pos-cashier", lambda m: m["state"] == "idle")
        app.printer.unplug()
        m = screens.wait("pos-cashier", lambda m: "打印机未连接" in m.get("degraded", ""))
        assert "请检查USB线" in m["degraded"]
        assert "degraded" not in screens.models["pos-customer"]  # the shopper's screen stays as it was
        app.scanner.scan(CODE)  # the counter still sells while the printer is away
        screens.wait("pos-cashier", lambda m: [i["name"] for i in m["items"]] == ["可乐"])
        app.scanner.unplug()
        screens.wait("pos-cashier", lambda m: "扫码枪未连接" in m.get("degraded", ""))
        app.printer.replug()
        app.scanner.replug()
        screens.wait("pos-cashier", lambda m: "degraded" not in m)
        app.scanner.scan(CODE)  # the app reopened the scanner once the supervisor saw it back
        screens.wait("pos-cashier", lambda m: len(m["items"]) == 2)
        assert "degraded" not in cashier()
    finally:
        stop.set()
        thread.join(10)
        sup.stop()
        app.replica.close()
    assert not thread.is_alive()


def test_mirror_shows_a_missing_call_button_keeps_processing_frames_and_pings_the_watchdog(tmp_path, monkeypatch):
    monkeypatch.setattr(sync.notify, "WATCHDOG_PING_S", 0.05)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    cfg = _config(tmp_path, "mirror")
    built = build_peripherals(cfg, fake=True)
    screens = Screens()
    replica = open_replica(cfg)
    frames = Frames()
    app = MirrorApp(camera=FakeCamera(iter(frames)), pipeline=build_pipeline(cfg), paced=False,
                    replica=replica, identifier=build_identifier(cfg), store_id=cfg.device.store_id,
                    timezone=timezone_of(cfg), publish=screens)
    frames.app = app
    sup = start_supervisor(mirror_peripherals(built), on_degraded=lambda text, _m, _n: app.set_degraded(text))
    stop, thread = _start(app.run)
    try:
        assert notify.recv(64) == b"READY=1"  # sent by the app's loop once it serves, not by the supervisor
        assert notify.recv(64) == b"WATCHDOG=1"
        assert notify.recv(64) == b"WATCHDOG=1"  # keeps coming from the frame loop
        assert sup.wait_for("call_button", "ok", 10)
        built["call_button"].device.device.unplug()
        m = screens.wait("mirror", lambda m: "呼叫按钮未连接" in m.get("degraded", ""))
        assert m["state"] == "attract"
        frames.wait_processed(app.stats.frames + 5)  # inference goes on meanwhile
        built["call_button"].device.device.replug()
        screens.wait("mirror", lambda m: "degraded" not in m)
    finally:
        stop.set()
        thread.join(20)
        sup.stop()
        replica.close()
        notify.close()
    assert not thread.is_alive()

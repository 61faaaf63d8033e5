"""π-POS fixtures: a seeded reference cloud process that can be stopped and restarted on its port,
enrolled π-POS devices (real `joyedge enroll` + `joyedge sync`), and registered depth frames."""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.v1 import sync_pb2
from device.demo import BUILTIN_CAST

BIN = Path(sys.executable).parent


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of our console scripts; fail the test with its stderr when it fails."""
    done = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed: {done.stderr[-2000:]}"
    return done


class Cloud:
    """`joyedge-cloud serve` as a child process; `stop()` and `start()` keep the same port."""

    def __init__(self, root: Path) -> None:
        self.db = root / "cloud.db"
        self.ca = root / "ca"
        self.report = json.loads(cli("joyedge-cloud", "seed-demo", "--db", str(self.db), "--faces",
                                     str(BUILTIN_CAST), "--enroll-per-person", "3", "--json").stdout)
        cli("joyedge-cloud", "ca", "init", "--dir", str(self.ca))
        self.port = 0
        self.enroll_port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "joyedge-cloud"), "serve", "--db", str(self.db), "--port", str(self.port),
             "--enroll-port", str(self.enroll_port), "--tls-dir", str(self.ca)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert "serving on" in line and "enrollment on" in line, line
        self.port = int(line.split("serving on", 1)[1].split()[0].rsplit(":", 1)[1])
        self.enroll_port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the cloud's database (the ledger) directly, as an auditor would."""
        import sqlite3

        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def member(self, person: str) -> dict:
        return next(m for m in self.report["members"] if m["person"] == person)


@pytest.fixture(scope="package")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("pos-cloud"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def enroll_device(cloud: Cloud, root: Path, profile: str, depth_dir: Path | None = None) -> Path:
    """Write a π-POS device config, enroll it with a claim token and sync it once; returns the config."""
    dev_id = f"{profile}-{uuid.uuid4().hex[:6]}"
    site, store = cloud.report["site_id"], cloud.report["store_ids"][0]
    depth = f'[depth_camera]\nuri = "depth-replay:{depth_dir}"\n' if depth_dir else ""
    cfg = root / f"{dev_id}.toml"
    cfg.write_text(f'profile = "{profile}"\n[device]\nid = "{dev_id}"\nsite_id = "{site}"\nstore_id = "{store}"\n'
                   f'data_dir = "{root / dev_id}"\n[camera]\nuri = "replay:unused"\n{depth}'
                   f'[sync]\ncloud = "127.0.0.1:{cloud.port}"\ninsecure = false\n', encoding="utf-8")
    token = cli("joyedge-cloud", "ca", "issue-claim-token", "--db", str(cloud.db), "--site-id", site,
                "--store-id", store, "--profile", profile).stdout.strip()
    cli("joyedge", "enroll", "--config", str(cfg), "--cloud", f"127.0.0.1:{cloud.enroll_port}",
        f"--claim-token={token}", "--ca-file", str(cloud.ca / "ca.pem"))
    cli("joyedge", "sync", "--config", str(cfg), "--once")
    return cfg


def push_unsettled(cloud: Cloud, cfg_file: Path, replica) -> sync_pb2.PushResponse:
    """Push the device's pending outbox to the cloud over its mTLS identity and do NOT settle the
    answer: what a sync daemon killed after the cloud applied a push, before the device stored the
    ack, leaves behind (the same events go again with the next sync)."""
    from device.config import load_config
    from sync.client import SyncClient
    from sync.identity import DeviceIdentity
    from sync.outbox import Outbox

    cfg = load_config(cfg_file)
    ident = DeviceIdentity.load(cfg.identity_dir)
    client = SyncClient(f"127.0.0.1:{cloud.port}", credentials=ident.channel_credentials(),
                        options=ident.channel_options())
    try:
        events = Outbox(replica).pending()
        assert events, "nothing to push"
        return client.push(sync_pb2.PushRequest(device_id=cfg.device.id, site_id=cfg.device.site_id,
                                                store_id=cfg.device.store_id, events=events))
    finally:
        client.close()


def face_depth(shape: tuple[int, int], box, nose, relief_mm: float = 25.0, dist_mm: float = 600.0) -> np.ndarray:
    """What a depth camera registered to the RGB frame sees: a head with a nose, or (relief 0) a flat photo."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    x0, y0, x1, y1 = box
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    depth = np.full((h, w), 2500.0)
    inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 < 1.2
    depth[inside] = dist_mm
    if relief_mm:
        r2 = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
        depth -= np.where(r2 < 1, 20 * np.sqrt(np.clip(1 - r2, 0, 1)), 0) * inside
        sx, sy = rx * 0.15, ry * 0.15
        depth -= relief_mm * np.exp(-(((xs - nose[0]) / sx) ** 2 + ((ys - nose[1]) / sy) ** 2))
    rng = np.random.default_rng(1)
    return (depth + rng.normal(0, 1.0, size=(h, w))).astype(np.uint16)


@contextlib.contextmanager
def counter_app(cfg: Any, publish: Callable[[str, dict[str, Any]], None], **kw: Any) -> Iterator[Any]:
    """A π-POS app of the enrolled device `cfg` on a fake camera, its gallery loaded from the replica;
    its payment channel and replica closed on exit. `kw` goes to `build_pos_app` (depth, actions)."""
    from device.pos.build import build_pos_app, connect_gateway
    from drivers.camera.fake import FakeCamera

    gateway = connect_gateway(cfg)
    try:
        app = build_pos_app(cfg, publish=publish, camera=FakeCamera([]), fake_hardware=True, gateway=gateway, **kw)
    except BaseException:
        gateway.close()
        raise
    app.identifier.gallery.refresh_from(app.replica, None)
    try:
        yield app
    finally:
        gateway.close()
        app.replica.close()


@contextlib.contextmanager
def served_screens(app: Any) -> Iterator[Any]:
    """The counter's cashier screen served by a kiosk server; the app publishes to it until exit, when
    the server is stopped and its threads joined."""
    from kiosk_ui.server import KioskServer

    kiosk = KioskServer(port=0).start()
    kiosk.on_action("pos-cashier", app.on_action("pos-cashier"))
    app.publish = kiosk.publish
    try:
        yield kiosk
    finally:
        app.publish = lambda view, model: None
        kiosk.stop()


@contextlib.contextmanager
def app_loop(app):
    """The π-POS loop's action handling on a thread while a page is being used (the page's preview asks
    and confirms are handled as they arrive, as `PosApp.run` does); stopped and joined on exit, so the
    test may call `app.handle` itself again afterwards without racing it."""
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                view, action = app.actions.get(timeout=0.02)
            except queue.Empty:
                continue
            app.handle(view, action)

    thread = threading.Thread(target=serve, name="pos-test-loop")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the app loop did not stop"
    while not app.actions.empty():  # what the page sent last is acted on too
        app.handle(*app.actions.get_nowait())


def retire_coupon(cloud: Cloud, member: str, coupon_id: str, title: str, value: int, threshold: int) -> None:
    """Let a test's coupon lapse in the cloud, so counters enrolled by later tests cannot pick it."""
    import time

    from api.v1 import crm_pb2
    from cloud_stub.storage import SqliteStorage

    storage = SqliteStorage(cloud.db)
    try:
        now = int(time.time() * 1000)
        storage.upsert_coupon(coupon_id=coupon_id, member_id=member, title=title,
                              kind=crm_pb2.COUPON_KIND_THRESHOLD if threshold else crm_pb2.COUPON_KIND_CASH,
                              value_cents=value, threshold_cents=threshold, valid_from_ms=now - 2 * 86_400_000,
                              valid_until_ms=now - 1, status=crm_pb2.COUPON_STATUS_EXPIRED)
    finally:
        storage.close()

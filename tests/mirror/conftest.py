"""Fixtures for the mirror flows: a real reference cloud on loopback, devices that sync from it, and a
real MirrorApp (real models) fed by a scripted camera the test changes scene by scene."""

from __future__ import annotations

import io
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from cloud_stub import fusion
from cloud_stub.demo import seed_demo
from cloud_stub.member_qr import MemberQrKeys, key_dir_for
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from device import app as app_mod
from device.app import MirrorApp
from device.demo import BUILTIN_CAST
from device.gallery import Gallery
from device.identity import Identifier
from device.mirror import enrollment as enroll_mod
from device.mirror.features import MirrorFeatures
from device.mirror.find_car import CarFinder
from device.mirror.member_qr import KeyFetcher, KeyRing, MemberCodeVerifier, NonceLedger
from drivers.camera.fake import FakeCamera
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.replica import Replica

NEW_MEMBER, NEW_NAME = "M-new-01", "李娜"
PLATE, BAY = "沪A12345", "B2-117"
FRAME_S = 1 / 30


@dataclass
class Cloud:
    """A seeded reference cloud on a loopback port: Grace Hopper has templates, the member NEW_MEMBER has
    none yet; Grace Hopper's car is parked in BAY."""

    db: Path
    server: CloudServer
    site_id: str
    store_id: str
    hopper: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def mint(self, member_id: str, *, ttl_s: int = 90, now: float | None = None) -> str:
        """A dynamic member QR token, as `joyedge-cloud member qr` (the mini-program) makes it."""
        return MemberQrKeys(key_dir_for(self.db)).mint(SqliteStorage(self.db), member_id, ttl_s=ttl_s, now=now)

    def verifier(self, site_id: str | None = None, db_path: Path | None = None,
                 accept_legacy: bool = False) -> MemberCodeVerifier:
        """A device's member-QR verifier: keys fetched from this cloud (loopback), nonces in `db_path`."""
        site = site_id or self.site_id
        # A generous deadline: on a loaded CI machine the first call can take seconds; a failed fetch here
        # would make every code of the test "invalid" instead of what the test shows.
        ring = KeyRing(site, fetch=KeyFetcher(self.address, site, insecure=True, deadline_s=30.0))
        ring.refresh()
        assert ring.keys(), f"the member-QR keys of {site} could not be fetched from the test cloud"
        return MemberCodeVerifier(site, ring, NonceLedger(db_path), accept_legacy=accept_legacy)

    def templates_of(self, member_id: str) -> int:
        """The cloud's templates of a member (read straight from its database)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM templates WHERE member_id = ?", (member_id,)).fetchone()[0])
        finally:
            conn.close()


@pytest.fixture(scope="module")
def mirror_cloud(tmp_path_factory) -> Iterator[Cloud]:
    tmp = tmp_path_factory.mktemp("cloud")
    faces = tmp / "faces"
    # Not the astronaut: the head-turn clip's woman (NEW_MEMBER, who must start as an unknown face) scores
    # 0.93-0.936 against her on frontal frames 12-15 and 22, over the 0.93 threshold, so whether the mirror
    # first greeted "*志强" or offered enrollment depended on which frame the tracker embedded first.
    for person in ("grace_hopper",):
        shutil.copytree(BUILTIN_CAST / person, faces / person)
    storage = SqliteStorage(tmp / "cloud.db")
    report = seed_demo(storage, faces, enroll_per_person=3)
    hopper = next(m.member_id for m in report.members if m.person == "grace_hopper")
    storage.upsert_member(member_id=NEW_MEMBER, site_id=report.site_id, name=NEW_NAME, points=120)
    fusion.link_plate(storage, PLATE, hopper, "parking-app binding")
    fusion.record_parking(storage, PLATE, report.site_id, BAY, True)
    server = start_server(tmp / "cloud.db", port=0)
    yield Cloud(tmp / "cloud.db", server, report.site_id, report.store_ids[0], hopper)
    server.stop(grace=0)


@pytest.fixture
def mirror_device(tmp_path, mirror_cloud) -> Iterator[Callable[[str], SyncDaemon]]:
    """A factory of devices (replica + sync daemon) of the cloud's site; call `daemon.sync_once()`."""
    made: list[tuple[Replica, SyncClient]] = []

    def make(name: str) -> SyncDaemon:
        replica = Replica(tmp_path / name / "replica.db", TemplateCipher(tmp_path / name / "identity"))
        client = SyncClient(mirror_cloud.address, insecure=True)
        made.append((replica, client))
        return SyncDaemon(replica, client, device_id=name, site_id=mirror_cloud.site_id,
                          store_id=mirror_cloud.store_id)

    yield make
    for replica, client in made:
        client.close()
        replica.close()


@pytest.fixture(scope="session")
def models():
    """The real models: detector, embedder, face mesh, age/gender."""
    from inference.attributes import AttributeModel
    from inference.detector import BlazeFaceDetector
    from inference.embedder import FaceEmbedder
    from inference.landmarks import FaceLandmarker
    from inference.store import ModelStore

    store = ModelStore()
    return {"detector": BlazeFaceDetector.from_store(store, variant="short"), "embedder": FaceEmbedder.from_store(store),
            "landmarker": FaceLandmarker.from_store(store), "attributes": AttributeModel(store)}


@pytest.fixture
def fast_flows(monkeypatch) -> None:
    """Liveness asks for the two turns the head-turn clip performs; results and reload checks are quick."""
    monkeypatch.setattr(enroll_mod, "LIVENESS_ACTIONS", ("turn_left", "turn_right"))
    monkeypatch.setattr(enroll_mod, "LIVENESS_STEPS", 2)
    monkeypatch.setattr(app_mod, "RELOAD_CHECK_S", 0.1)
    monkeypatch.setattr(app_mod, "RESULT_SHOW_S", 60.0)


# -- scenes ------------------------------------------------------------------------------------------


def qr_frame(text: str) -> np.ndarray:
    """A camera frame of a phone showing a QR code."""
    import qrcode

    img = qrcode.make(text, box_size=6, border=4).get_image().convert("RGB")
    canvas = Image.new("RGB", (640, 360), (90, 90, 90))
    canvas.paste(img, ((640 - img.width) // 2, (360 - img.height) // 2))
    return np.asarray(canvas)


def head_turn_frames(shared_data: Path) -> list[np.ndarray]:
    """The head-turning clip, cropped to the face area and scaled x2 (as the demo cast frames are)."""
    gif = Image.open(shared_data / "video" / "intel_head-pose-face-detection-female.gif")
    return [np.asarray(f.convert("RGB").crop((60, 0, 380, 180)).resize((640, 360)))
            for f in ImageSequence.Iterator(gif)]


def spoof_frames(shared_data: Path) -> list[np.ndarray]:
    """A printed photo held still: the same frame again and again."""
    path = shared_data / "spoof" / "silentface_image_F1.jpg"  # F = fake (a printed photo), T = true
    img = Image.open(io.BytesIO(path.read_bytes())).convert("RGB").rotate(90, expand=True)
    return [np.asarray(img)] * 4


BLANK = np.full((360, 640, 3), 96, np.uint8)


@dataclass
class Scene:
    """What the scripted camera shows: a loop of frames, changed by the test at any time."""

    frames: list[np.ndarray] = field(default_factory=lambda: [BLANK])
    stop: threading.Event = field(default_factory=threading.Event)
    shown: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def show(self, frames: list[np.ndarray]) -> None:
        with self._lock:
            self.frames, self.shown = list(frames), 0

    def __iter__(self) -> Iterator[np.ndarray]:
        i = 0
        while not self.stop.is_set():
            with self._lock:
                frame = self.frames[i % len(self.frames)]
                self.shown += 1
            i += 1
            time.sleep(FRAME_S)  # a camera's pace
            yield frame


@dataclass
class RunningMirror:
    app: MirrorApp
    scene: Scene
    thread: threading.Thread
    stop: threading.Event
    published: list[dict]

    def close(self) -> None:
        self.stop.set()
        self.scene.stop.set()
        self.thread.join(timeout=30)
        self.app.replica.close()


def start_mirror(models, daemon: SyncDaemon, store_id: str, publish: Callable, on_action: Callable | None,
                 cloud_address: str | None, device_name: str = "mirror-t1",
                 member_codes: MemberCodeVerifier | None = None, identifier: Identifier | None = None) -> RunningMirror:
    """A real MirrorApp on its own thread (real pipeline, gallery and features; the scripted camera), with
    its own connection to the daemon's replica file, as the app and `joyedge sync` have in production.
    ``identifier``: fixed thresholds 0.93/0.02 unless given (e.g. one whose thresholds follow the gallery)."""
    from inference.pipeline import FacePipeline

    replica = Replica(daemon.replica.path, daemon.replica.cipher)
    scene = Scene()
    published: list[dict] = []

    def record(view: str, model: dict) -> None:
        published.append(model)
        publish(view, model)

    features = MirrorFeatures(landmarker=models["landmarker"], attributes=models["attributes"],
                              car_finder=CarFinder(cloud_address, insecure=True) if cloud_address else None,
                              device_name=device_name, member_codes=member_codes)
    app = MirrorApp(camera=FakeCamera(scene), pipeline=FacePipeline(models["detector"], models["embedder"]),
                    replica=replica, identifier=identifier or Identifier(Gallery(), threshold=0.93, min_margin=0.02),
                    store_id=store_id, timezone=None, publish=record, features=features, on_action=on_action)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: (app.run(stop), features.close()), name="mirror-app")
    thread.start()
    return RunningMirror(app, scene, thread, stop, published)

"""`joyedge demo`: the whole system on one machine, as it runs in production.

The reference cloud runs as its own process (`joyedge-cloud serve`), seeded with demo members
whose templates come from photos; the sync daemon runs as its own process; this process is the
mirror, fed by a replay camera, serving its page on localhost. With --faces DIR the first photos
of each person are enrolled and the rest replayed, interleaved with people never enrolled, so the
summary can say who was greeted, who stayed unknown and whether anybody was taken for someone else.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.app import MirrorApp, TrackResult
from device.errors import DeviceError
from device.greeting import mask_name
from drivers.camera.replay import ReplayCamera, decode_still, list_stills

_LOG = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "demo_assets"
BUILTIN_CAST = ASSETS / "cast"
BUILTIN_STRANGERS = ASSETS / "strangers"
CLOUD_START_TIMEOUT_S = 60.0
LIVE_FPS = 8.0
# Each photo is one person walking by: seen for a few frames, then gone long enough for the
# tracker to end the track (it keeps a track through 5 missed frames).
REPLAY_HOLD_FRAMES = 4
REPLAY_GAP_FRAMES = 8
SEED = 7


@dataclass
class DemoOptions:
    """What `joyedge demo` was asked for."""

    headless: bool = False
    duration: float = 0.0
    as_json: bool = False
    faces: Path | None = None
    port: int = 8080
    workdir: Path = Path("var/demo")
    enroll_per_person: int = 3


def _script(name: str) -> str:
    sibling = Path(sys.executable).with_name(name)
    found = str(sibling) if sibling.exists() else shutil.which(name)
    if not found:
        raise DeviceError(f"`{name}` is not installed: run `make venv` (pip install -e .)")
    return found


def _augment(image: np.ndarray, variant: int) -> np.ndarray:
    """A different view of the same photo (mirrored, closer or further, lighter or darker)."""
    from PIL import Image, ImageEnhance

    im = Image.fromarray(image)
    if variant % 2 == 0:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    w, h = im.size
    scale = (0.8, 1.15, 0.9)[variant % 3]
    canvas = Image.new("RGB", (w, h), (96, 96, 96))
    small = im.resize((max(1, int(w * scale)), max(1, int(h * scale))))
    canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
    return np.asarray(ImageEnhance.Brightness(canvas).enhance((0.85, 1.1, 1.0)[variant % 3]))


def plan_replay(report: dict[str, Any], cast_dir: Path, stranger_dirs: list[Path],
                ) -> tuple[list[tuple[np.ndarray, dict[str, Any]]], dict[str, str]]:
    """Replay frames (image, meta) and the person → member_id map of who was enrolled."""
    enrolled_by_person: dict[str, tuple[str, set[str]]] = {}
    for m in report.get("members", []):
        if m.get("person") and m.get("templates", 0) > 0:
            enrolled_by_person[m["person"]] = (m["member_id"], set(m.get("enrolled", [])))
    frames: list[tuple[np.ndarray, dict[str, Any]]] = []
    by_person: dict[str, list[Path]] = {}
    for path, label in list_stills(cast_dir):
        by_person.setdefault(label or path.stem, []).append(path)
    for person, paths in sorted(by_person.items()):
        if person not in enrolled_by_person:
            continue
        _, enrolled = enrolled_by_person[person]
        rest = [p for p in paths if p.name not in enrolled]
        if rest:
            for p in rest:
                image = decode_still(p)
                if image is not None:
                    frames.append((image, {"label": person, "source": str(p)}))
        else:  # one photo only: replay other views of it
            image = decode_still(paths[0])
            if image is not None:
                for v in range(2):
                    frames.append((_augment(image, v), {"label": person, "source": f"{paths[0]}#view{v}"}))
    for folder in stranger_dirs:
        for path, label in list_stills(folder):
            image = decode_still(path)
            if image is not None:
                frames.append((image, {"label": f"stranger:{label or path.stem}", "source": str(path)}))
    random.Random(SEED).shuffle(frames)
    return frames, {person: mid for person, (mid, _) in enrolled_by_person.items()}


class _Cloud:
    """The reference cloud as a child process."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.ca_dir = db.parent / "ca"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.enroll_port = 0

    def seed(self, faces: Path, enroll_per_person: int) -> dict[str, Any]:
        cmd = [_script("joyedge-cloud"), "seed-demo", "--db", str(self.db), "--faces", str(faces),
               "--enroll-per-person", str(enroll_per_person), "--seed", str(SEED), "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DeviceError(f"seeding the demo cloud failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout)

    def _admin(self, *args: str) -> str:
        done = subprocess.run([_script("joyedge-cloud"), *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DeviceError(f"joyedge-cloud {args[0]} {args[1]} failed: {done.stderr.strip()[-800:]}")
        return done.stdout

    def init_ca(self) -> Path:
        """`joyedge-cloud ca init` (once per work dir); the CA certificate devices trust."""
        if not (self.ca_dir / "ca.key").exists():
            self._admin("ca", "init", "--dir", str(self.ca_dir))
        return self.ca_dir / "ca.pem"

    def claim_token(self, site_id: str, store_id: str) -> str:
        """A single-use claim token for one mirror of `store_id`."""
        return self._admin("ca", "issue-claim-token", "--db", str(self.db), "--site-id", site_id,
                           "--store-id", store_id, "--profile", "mirror").strip()

    def start(self) -> int:
        cmd = [_script("joyedge-cloud"), "serve", "--db", str(self.db), "--host", "127.0.0.1", "--port", "0",
               "--tls-dir", str(self.ca_dir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
        deadline = time.monotonic() + CLOUD_START_TIMEOUT_S
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "serving on" in line:
                self.port = int(line.split("serving on", 1)[1].split()[0].rsplit(":", 1)[1])
                self.enroll_port = int(line.rsplit(":", 1)[1])
                return self.port
        self.stop()
        raise DeviceError("the demo cloud did not start (see its messages above)")

    def stop(self) -> None:
        _terminate(self.proc)


def _terminate(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _write_device_config(path: Path, data_dir: Path, cloud_port: int, ui_port: int,
                         site_id: str = "site-demo", store_id: str = "store-demo-01") -> None:
    # mTLS with the certificate from `joyedge enroll` (insecure = false).
    path.write_text(
        f'profile = "mirror"\n\n[device]\nid = "mirror-demo-01"\nsite_id = "{site_id}"\n'
        f'store_id = "{store_id}"\ndata_dir = "{data_dir}"\n\n'
        '[camera]\nuri = "replay:demo"\n\n'
        f'[sync]\ncloud = "127.0.0.1:{cloud_port}"\ninterval_s = 2.0\ninsecure = false\n\n'
        f'[ui]\nport = {ui_port}\n',
        encoding="utf-8",
    )


class _Scorer:
    """Turns track results into the demo's summary and one line per recognition."""

    def __init__(self, expected: dict[str, str], names: dict[str, str], quiet: bool) -> None:
        self.expected, self.names, self.quiet = expected, names, quiet
        self.greeted: list[str] = []
        self.greeted_people: set[str] = set()
        self.unknown = 0
        self.misidentified: list[dict[str, Any]] = []
        self.tracks = 0
        self._lock = threading.Lock()

    def __call__(self, result: TrackResult) -> None:
        label = str(result.meta.get("label", ""))
        want = self.expected.get(label)
        with self._lock:
            self.tracks += 1
            if result.member_id is None:
                self.unknown += 1
                line = f"mirror: track {result.track_id} → unknown, neutral welcome (best {result.score:.3f})"
            else:
                if result.member_id not in self.greeted:
                    self.greeted.append(result.member_id)
                if want == result.member_id:
                    self.greeted_people.add(label)
                elif label:
                    self.misidentified.append({"track": result.track_id, "label": label,
                                               "expected": want, "got": result.member_id,
                                               "source": result.meta.get("source", "")})
                line = (f"mirror: track {result.track_id} → {result.member_id} "
                        f"{mask_name(self.names.get(result.member_id, ''))} (score {result.score:.3f})")
        if not self.quiet:
            print(line, flush=True)


def run_demo(opts: DemoOptions) -> int:
    """Run the demo; returns the process exit code."""
    from device.assemble import build_identifier, build_pipeline, open_replica, timezone_of
    from device.config import load_config
    from device.mirror.features import build_features
    from kiosk_ui.server import KioskServer

    work = opts.workdir.resolve()
    cast = (opts.faces or BUILTIN_CAST).resolve()
    if not cast.is_dir():
        raise DeviceError(f"--faces {cast}: not a folder (expected one sub-folder per person)")
    if work.exists():
        for stale in ("cloud.db", "cloud.db-wal", "cloud.db-shm", "cloud.db.key", "mirror", "ca", "pos"):
            p = work / stale
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    say = (lambda *_a: None) if opts.as_json else (lambda msg: print(msg, flush=True))

    cloud = _Cloud(work / "cloud.db")
    sync_proc: subprocess.Popen | None = None
    stop = threading.Event()
    try:
        say(f"demo: seeding the cloud with the people in {cast}")
        report = cloud.seed(cast, opts.enroll_per_person)
        ca_pem = cloud.init_ca()
        port = cloud.start()
        say(f"demo: cloud on 127.0.0.1:{port} (mTLS), enrollment on 127.0.0.1:{cloud.enroll_port}")
        cfg_path = work / "mirror.toml"
        site_id, store_id = report["site_id"], report["store_ids"][0]
        _write_device_config(cfg_path, work / "mirror", port, opts.port, site_id, store_id)
        cfg = load_config(cfg_path)
        done = subprocess.run([_script("joyedge"), "enroll", "--config", str(cfg_path),
                               "--cloud", f"127.0.0.1:{cloud.enroll_port}",
                               f"--claim-token={cloud.claim_token(site_id, store_id)}", "--ca-file", str(ca_pem)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DeviceError(f"enrollment failed: {done.stderr.strip()[-800:]}")
        say("demo: " + done.stdout.strip().splitlines()[0])
        done = subprocess.run([_script("joyedge"), "sync", "--config", str(cfg_path), "--once"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DeviceError(f"first sync failed: {done.stderr.strip()[-800:]}")
        say("demo: " + done.stdout.strip())
        sync_proc = subprocess.Popen([_script("joyedge"), "sync", "--config", str(cfg_path), "--daemon"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        strangers = [BUILTIN_STRANGERS] + ([BUILTIN_CAST] if opts.faces else [])
        frames, expected = plan_replay(report, cast, strangers)
        names = {m["member_id"]: m.get("name", "") for m in report.get("members", [])}
        scorer = _Scorer(expected, names, quiet=opts.as_json)
        camera = ReplayCamera(frames, fps=0.0 if opts.headless else LIVE_FPS, loop=not opts.headless,
                              hold_frames=REPLAY_HOLD_FRAMES, gap_frames=REPLAY_GAP_FRAMES)
        replica = open_replica(cfg)
        with KioskServer(cfg.ui.host, cfg.ui.port) as kiosk:
            say(f"demo: mirror at {kiosk.url}/mirror ({len(frames)} people walking by"
                + (", Ctrl-C to stop)" if not opts.headless else ")"))
            features = build_features(cfg)
            app = MirrorApp(camera=camera, pipeline=build_pipeline(cfg), replica=replica,
                            identifier=build_identifier(cfg), store_id=cfg.device.store_id,
                            timezone=timezone_of(cfg), publish=kiosk.publish, on_result=scorer,
                            paced=not opts.headless, features=features, on_action=kiosk.on_action)
            pos = _PosPart(cloud, report, cast, work, kiosk, opts.headless, stop, say)  # π-POS part, below
            timer = None
            if opts.duration > 0:
                timer = threading.Timer(opts.duration, stop.set)
                timer.daemon = True
                timer.start()
            if not opts.headless:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, lambda *_: stop.set())
            started = time.monotonic()
            try:
                stats = app.run(stop)
            finally:
                features.close()
            payments = pos.finish()
            if timer is not None:
                timer.cancel()
        replica.close()
        summary = {
            "greeted": scorer.greeted,
            "unknown": scorer.unknown,
            "misidentified": scorer.misidentified,
            "people_enrolled": len(expected),
            "people_greeted": sorted(scorer.greeted_people),
            "tracks": scorer.tracks,
            "frames": stats.frames,
            "seconds": round(time.monotonic() - started, 1),
            "latency_ms": stats.medians() | _pipeline_medians(app.pipeline),
            "counts": stats.counts,  # the mirror's phone-digit confirmations (confirm_asked, confirm_ok, ...)
            "payments": payments,
        }
        if opts.as_json:
            print(json.dumps(summary, ensure_ascii=False), flush=True)
        else:
            say(f"demo: greeted {len(scorer.greeted)} members, {scorer.unknown} unknown, "
                f"{len(scorer.misidentified)} misidentified")
        return 0
    finally:
        stop.set()
        _terminate(sync_proc)
        cloud.stop()


def _pipeline_medians(pipeline: Any) -> dict[str, float]:
    """Median ms per pipeline stage (detect, embed, ...)."""
    timings = getattr(pipeline, "timings", None)
    return {k: round(v, 1) for k, v in timings.summary().items()} if timings is not None else {}


# ---- π-POS part of the demo (owner: π-POS; see device/pos/demo_pos.py) ------------------------------

class _PosPart:
    """An enrolled π-POS flagship on the demo's kiosk server, with a scripted shopper on its own thread."""

    def __init__(self, cloud: _Cloud, report: dict[str, Any], cast: Path, work: Path, kiosk: Any, headless: bool,
                 stop: threading.Event, say: Any) -> None:
        from device.config import load_config
        from device.pos.build import build_pos_app, connect_gateway
        from device.pos.demo_pos import ScriptedDepth, _Camera, pick_shopper, run_pos_script

        self.payments: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None
        self.app: Any = None
        self.gateway: Any = None
        shopper = pick_shopper(report, cast)
        if shopper is None:
            say("demo: π-POS skipped (no enrolled member with a photo to pay with)")
            return
        site_id, store_id = report["site_id"], report["store_ids"][0]
        cfg_path = work / "pos.toml"
        cfg_path.write_text(
            f'profile = "pos-flagship"\n[device]\nid = "pos-demo-01"\nsite_id = "{site_id}"\nstore_id = "{store_id}"\n'
            f'data_dir = "{work / "pos"}"\n[camera]\nuri = "replay:demo"\n[depth_camera]\nuri = "fake-depth:"\n'
            f'[sync]\ncloud = "127.0.0.1:{cloud.port}"\ninsecure = false\n', encoding="utf-8")
        token = cloud._admin("ca", "issue-claim-token", "--db", str(cloud.db), "--site-id", site_id,
                             "--store-id", store_id, "--profile", "pos-flagship").strip()
        for args in (["enroll", "--config", str(cfg_path), "--cloud", f"127.0.0.1:{cloud.enroll_port}",
                      f"--claim-token={token}", "--ca-file", str(cloud.ca_dir / "ca.pem")],
                     ["sync", "--config", str(cfg_path), "--once"]):
            done = subprocess.run([_script("joyedge"), *args], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DeviceError(f"π-POS {args[0]} failed: {done.stderr.strip()[-800:]}")
        cfg = load_config(cfg_path)
        self.gateway = connect_gateway(cfg)
        self.app = build_pos_app(cfg, publish=kiosk.publish, camera=_Camera(), depth=ScriptedDepth(),
                                 fake_hardware=True, gateway=self.gateway)
        self.app.identifier.gallery.refresh_from(self.app.replica, None)
        self.app.refresh_credit(force=True)
        for view in ("pos-cashier", "pos-customer"):
            kiosk.on_action(view, self.app.on_action(view))
        say(f"demo: π-POS at {kiosk.url}/pos/cashier and {kiosk.url}/pos/customer")

        def script() -> None:
            try:
                self.payments = run_pos_script(self.app, shopper, headless=headless, stop=stop, say=say)
            except Exception:  # the demo goes on without the counter; the log says why
                _LOG.exception("π-POS demo script failed")

        self.thread = threading.Thread(target=script, name="pos-demo", daemon=True)
        self.thread.start()

    def finish(self) -> list[dict[str, Any]]:
        """Wait for the scripted shopper (one round headless), close the counter; returns the payments."""
        if self.thread is not None:
            self.thread.join(timeout=120)
        if self.app is not None:
            self.app.replica.close()
        if self.gateway is not None:
            self.gateway.close()
        return self.payments

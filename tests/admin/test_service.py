"""Happy paths of field service through the real `joyprov` CLI against a device admin server on
loopback: status, logs, config set (and an invalid one refused with the key named), factory reset
(templates unreadable afterwards), certificate rotation, the audit trail reaching the cloud, and
`joyprov discover --json` then `joyprov status` on the advertised address."""

from __future__ import annotations

import json
import logging
import logging.handlers
import time

import pytest

from cloud_stub import technicians
from device.admin import logfile
from device.admin.server import AdminServer
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.errors import KeyError_
from sync.replica import Replica
from tests.admin.conftest import DEVICE_ID, LOOPBACK, SITE, STORE, joyprov


def _run(*args: str) -> dict:
    done = joyprov(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_reports_the_device(admin, device, tech_dir) -> None:
    s = _run("status", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir), "--json")
    assert (s["device_id"], s["site_id"], s["store_id"], s["profile"]) == (DEVICE_ID, SITE, STORE, "mirror")
    assert s["sync"]["state"] == "unknown" and int(s["sync"]["outbox_depth"]) == 0  # audited after answering
    assert {p["name"] for p in s["peripherals"]} >= {"camera"} and s["models"]
    assert int(s["disk"]["total_bytes"]) > 0 and s["certificate_serial"] == f"{device.identity.serial:x}"
    table = joyprov("status", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir))
    assert table.returncode == 0 and DEVICE_ID in table.stdout and "PERIPHERAL" in table.stdout


def test_status_says_when_the_gallery_is_too_large_for_the_face_alone(admin, device, tech_dir) -> None:
    """A technician asked "why does the mirror ask everybody for their phone digits?" sees the answer."""
    import numpy as np

    from api.v1 import crm_pb2, sync_pb2

    def status() -> dict:
        return _run("status", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir), "--json")["identity"]

    empty = status()
    assert empty["greet_threshold"] == empty["match_threshold"] == pytest.approx(0.93)
    assert empty["scaled"] and "phone" not in empty["detail"]
    vectors = np.random.default_rng(2).normal(size=(3_000, 128)).astype("<f4")
    changes = [sync_pb2.Change(seq=i + 1, key=f"T{i}", template=crm_pb2.FaceTemplate(
        template_id=f"T{i}", member_id=f"M{i // 2}", model="dlib_resnet_v1", vector=v.tobytes(), weight=1.0))
        for i, v in enumerate(vectors)]
    replica = Replica(device.cfg.db_path, TemplateCipher(device.cfg.identity_dir))
    try:
        replica.apply_batch(sync_pb2.StreamBatch(stream=sync_pb2.STREAM_TEMPLATES, changes=changes,
                                                 next_seq=len(changes)))
    finally:
        replica.close()
    large = status()
    assert (int(large["members"]), int(large["templates"])) == (1_500, 3_000)
    assert large["greet_threshold"] > 0.96 and large["payment_threshold"] > large["greet_threshold"]
    assert "last 4 digits" in large["detail"]
    table = joyprov("status", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir)).stdout
    assert "1500 members, 3000 templates" in table and "phone" in table


def test_logs_tail_and_since_merge_the_processes(admin, device, tech_dir) -> None:
    d = logfile.log_dir(device.cfg.device.data_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name in ("run", "sync"):  # two processes' files, the run log rotated once
        logger = logging.Logger(f"test-{name}")
        h = logging.handlers.RotatingFileHandler(d / f"{name}.log", maxBytes=400, backupCount=3)
        h.setFormatter(logging.Formatter(logfile.LOG_FORMAT))
        logger.addHandler(h)
        for i in range(8):
            logger.info("%s line %d", name, i)
        h.close()
    assert (d / "run.log.1").exists()
    got = _run("logs", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir), "--tail", "3", "--json")
    assert len(got["lines"]) == 3 and got["truncated"]
    assert got["lines"][-1].endswith("sync line 7") and got["lines"][-1].startswith("sync | ")
    every = _run("logs", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir), "--tail", "100", "--json")
    runs = [ln for ln in every["lines"] if "run line" in ln]
    assert [ln.rsplit(" ", 1)[1] for ln in runs] == [str(i) for i in range(8)]  # rotated file too, in order
    assert all(ln.startswith("run | ") for ln in runs)
    future = _run("logs", f"{LOOPBACK}:{admin.port}", "--cert-dir", str(tech_dir), "--since",
                  str(int(time.time() * 1000) + 3_600_000), "--json")
    assert future["lines"] == []


def test_config_set_validates_and_names_the_bad_key(admin, device, tech_dir) -> None:
    host = f"{LOOPBACK}:{admin.port}"
    ok = _run("config", "set", host, "identity.match_threshold=0.91", "ui.port=8081", "--cert-dir", str(tech_dir),
              "--json")
    assert ok["restart_needed"] and "match_threshold = 0.91" in ok["resolved"]
    saved = device.config_path.read_text()
    assert "match_threshold = 0.91" in saved and "port = 8081" in saved and f'id = "{DEVICE_ID}"' in saved
    for bad, key in (("identity.match_threshold=2", "identity.match_threshold"), ("camera.fsp=3", "camera.fsp")):
        done = joyprov("config", "set", host, bad, "--cert-dir", str(tech_dir))
        assert done.returncode == 3 and key in done.stderr, done.stderr
        assert device.config_path.read_text() == saved  # refused: nothing written
    got = _run("config", "get", host, "--cert-dir", str(tech_dir), "--json")
    assert got["device_file"] == saved


def test_factory_reset_crypto_erases_templates_and_the_replica(admin, device, tech_dir) -> None:
    host = f"{LOOPBACK}:{admin.port}"
    vector = bytes(range(64)) * 8
    sealed = TemplateCipher(device.cfg.identity_dir).encrypt("tpl-1", vector)  # as a template row is stored
    assert TemplateCipher(device.cfg.identity_dir).decrypt("tpl-1", sealed) == vector
    refused = joyprov("reset", host, "--cert-dir", str(tech_dir))
    assert refused.returncode == 4 and "--yes" in refused.stderr
    assert TemplateCipher(device.cfg.identity_dir).decrypt("tpl-1", sealed) == vector  # nothing happened
    r = _run("reset", host, "--yes", "--cert-dir", str(tech_dir), "--json")
    assert r["device_id"] == DEVICE_ID and r["templates_erased"] and r["replica_erased"]
    with pytest.raises(KeyError_):
        TemplateCipher(device.cfg.identity_dir).decrypt("tpl-1", sealed)
    fresh = Replica(device.cfg.db_path, TemplateCipher(device.cfg.identity_dir))
    try:
        assert fresh.templates() == [] and not fresh.has_cursors()
    finally:
        fresh.close()
    # the device is still enrolled and serviceable
    assert _run("status", host, "--cert-dir", str(tech_dir), "--json")["device_id"] == DEVICE_ID


def test_rotate_cert_and_the_audit_trail_reaches_the_cloud(admin, device, tech_dir, storage) -> None:
    host = f"{LOOPBACK}:{admin.port}"
    r = _run("rotate-cert", host, "--cert-dir", str(tech_dir), "--json")
    assert r["old_serial"] == f"{device.identity.serial:x}" and r["new_serial"] != r["old_serial"]
    s = _run("status", host, "--cert-dir", str(tech_dir), "--json")  # a new handshake: the new certificate
    assert s["certificate_serial"] == r["new_serial"]
    # the admin actions were queued in the outbox; the sync daemon pushes them like any event
    from sync.identity import DeviceIdentity

    ident = DeviceIdentity.load(device.cfg.identity_dir)
    replica = Replica(device.cfg.db_path, TemplateCipher(device.cfg.identity_dir))
    client = SyncClient(ident.sync_target, credentials=ident.channel_credentials())
    try:
        SyncDaemon(replica, client, device_id=ident.device_id, site_id=ident.site_id, store_id=ident.store_id,
                   identity=ident).push_once()
    finally:
        client.close()
        replica.close()
    trail = technicians.audit_trail(storage, DEVICE_ID)
    assert [a["action"] for a in reversed(trail)] == ["rotate_certificate", "status"]
    assert all(a["actor"] == f"urn:joyedge:technician:{SITE}:li.wei" and a["outcome"] == "ok" for a in trail)


def test_discover_then_status(device, tech_dir) -> None:
    with AdminServer(device.cfg, config_path=device.config_path, version="0.1.0", host=LOOPBACK, port=0,
                     advertise=True, interfaces=[LOOPBACK], fake_hardware=True) as server:
        found = _run("discover", "--interface", LOOPBACK, "--site", SITE, "--count", "1", "--timeout", "20", "--json")
        assert [(d["id"], d["port"]) for d in found] == [(DEVICE_ID, server.port)]
        addr = f"{found[0]['addresses'][0]}:{found[0]['port']}"
        assert _run("status", addr, "--cert-dir", str(tech_dir), "--json")["device_id"] == DEVICE_ID

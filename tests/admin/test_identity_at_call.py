"""The admin API reads the device identity when it is called, not when it started: a certificate
rotated by another process in between (the sync daemon rotates before expiry) is the one Status names
and the one RotateCertificate reports as replaced. Real mTLS, real `joyprov`, real rotations."""

from __future__ import annotations

import json

from sync.identity import DeviceIdentity
from tests.admin.conftest import LOOPBACK, joyprov


def _run(*args: str) -> dict:
    done = joyprov(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_rotation_by_another_process_is_what_the_admin_api_reports(admin, device, tech_dir) -> None:
    """GIVEN the admin server running, WHEN another process (here the same code path the sync daemon
    runs: DeviceIdentity loaded from the files, then rotate()) rotates the certificate, THEN Status names
    the new serial and RotateCertificate's old_serial is that serial, not the one the server started with."""
    host = f"{LOOPBACK}:{admin.port}"
    started = device.identity.serial
    by_daemon = DeviceIdentity.load(device.cfg.identity_dir).rotate()
    assert by_daemon.serial != started
    status = _run("status", host, "--cert-dir", str(tech_dir), "--json")
    assert status["certificate_serial"] == f"{by_daemon.serial:x}"
    r = _run("rotate-cert", host, "--cert-dir", str(tech_dir), "--json")
    assert r["old_serial"] == f"{by_daemon.serial:x}"
    now = DeviceIdentity.load(device.cfg.identity_dir)
    assert r["new_serial"] == f"{now.serial:x}" and now.serial not in (started, by_daemon.serial)


def test_selftest_says_the_edgetpu_reason_once(admin, tech_dir) -> None:
    """The admin SelfTest keeps model rows short and adds one `accelerator` row with the shared reason
    (accelerator auto, no Edge TPU on this machine)."""
    r = _run("selftest", f"{LOOPBACK}:{admin.port}", "--target", "inference", "--cert-dir", str(tech_dir), "--json")
    rows = r["checks"]
    assert sum("did not load" in c.get("detail", "") for c in rows) == 1
    summary = next(c for c in rows if c["kind"] == "accelerator")
    assert "libedgetpu.so.1" in summary["detail"] and "blazeface_short" in summary["detail"]
    model = next(c for c in rows if c["name"] == "blazeface_short")
    assert model["detail"].startswith("cpu, input") and "libedgetpu" not in model["detail"]

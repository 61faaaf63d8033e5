"""A real cloud (CA, enrollment port), an enrolled device with its admin server on loopback, and a
technician logged in through the cloud's TechnicianLogin — all over real mTLS on port 0."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_stub import ca, registry, technicians
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from device.admin.server import AdminServer
from device.config import DeviceConfig, load_config
from sync.identity import DeviceIdentity, enroll

# mDNS on loopback is shared by concurrent test runs: ids and the site are unique per run.
RUN = uuid.uuid4().hex[:8]
SITE, STORE = f"site-adm-{RUN}", f"store-adm-{RUN}"
DEVICE_ID = f"mirror-adm-{RUN}"
LOOPBACK = "127.0.0.1"


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return ca.init_ca(tmp_path / "ca").dir


@pytest.fixture
def storage(tmp_path: Path) -> SqliteStorage:
    s = SqliteStorage(tmp_path / "cloud.db")
    s.upsert_site(SITE, SITE)
    s.upsert_store(STORE, SITE, "store 1")
    return s


@pytest.fixture
def cloud(tmp_path: Path, storage: SqliteStorage, ca_dir: Path) -> Iterator[CloudServer]:
    with start_server(tmp_path / "cloud.db", host=LOOPBACK, port=0, storage=storage, tls_dir=ca_dir) as srv:
        yield srv


def enroll_device(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path, device_id: str,
                  identity_dir: Path) -> DeviceIdentity:
    """A device enrolled through the cloud's real enrollment port."""
    token = registry.create_claim_token(storage, site_id=SITE, store_id=STORE, profile="mirror")["token"]
    return enroll(identity_dir, f"{LOOPBACK}:{cloud.enroll_port}", token, ca_pem=(ca_dir / "ca.pem").read_bytes(),
                  device_id=device_id)


@dataclass
class Device:
    cfg: DeviceConfig
    config_path: Path
    identity: DeviceIdentity


@pytest.fixture
def device(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path) -> Device:
    data = tmp_path / "device"
    config_path = tmp_path / "device.toml"
    config_path.write_text(
        'profile = "mirror"\n\n[device]\n'
        f'id = "{DEVICE_ID}"\nsite_id = "{SITE}"\nstore_id = "{STORE}"\ndata_dir = "{data}"\n\n'
        f'[sync]\ncloud = "{LOOPBACK}:{cloud.port}"\ninsecure = false\n', encoding="utf-8")
    cfg = load_config(config_path)
    ident = enroll_device(tmp_path, cloud, storage, ca_dir, DEVICE_ID, cfg.identity_dir)
    return Device(cfg, config_path, ident)


@pytest.fixture
def admin(device: Device) -> Iterator[AdminServer]:
    """The device admin API on 127.0.0.1:<free port>, fake peripherals, not advertised."""
    server = AdminServer(device.cfg, config_path=device.config_path, version="0.1.0", host=LOOPBACK, port=0,
                         advertise=False, fake_hardware=True)
    with server:
        yield server


@pytest.fixture
def tech_dir(tmp_path: Path, cloud: CloudServer, storage: SqliteStorage, ca_dir: Path) -> Path:
    """A technician logged in with `joyprov login` and a one-time token of the operator."""
    token = technicians.create_login_token(storage, site_id=SITE, name="li.wei", hours=2)["token"]
    out = tmp_path / "tech"
    done = joyprov("login", "--cloud", f"{LOOPBACK}:{cloud.enroll_port}", "--token", token,
                   "--ca-file", str(ca_dir / "ca.pem"), "--cert-dir", str(out))
    assert done.returncode == 0, done.stderr
    assert "logged in as technician li.wei" in done.stdout
    return out


def joyprov(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real `joyprov` CLI."""
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], capture_output=True, text=True,
                          timeout=timeout)

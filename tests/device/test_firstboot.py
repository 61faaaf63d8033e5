"""Acceptance: an image configured by `joyprov configure` boots into `joyedge firstboot`, which enrolls
with a running cloud (real CA, real gRPC enrollment port on loopback), writes the device config and
the WiFi keyfile, and erases the claim token and the passphrase from the boot partition.

The device's mounted boot partition is stood in for by a folder the FAT file is copied into with
mtools (this machine cannot mount vfat)."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.firstboot import DONE_FILENAME, FILENAME, parse
from cloud_stub import ca, registry
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from device.cli import main as joyedge
from device.config import load_config
from provisioning.cli import main as joyprov
from tests.provisioning.conftest import BOOT_START, make_image, need

PSK = "Mall-Staff-Pass-2026"


@pytest.fixture
def cloud_env(tmp_path: Path) -> Iterator[tuple[CloudServer, SqliteStorage, Path]]:
    ca_dir = ca.init_ca(tmp_path / "ca").dir
    storage = SqliteStorage(tmp_path / "cloud.db")
    storage.upsert_site("site-joycity-sh", "Joy City")
    storage.upsert_store("store-2F-012", "site-joycity-sh", "2F-012")
    with start_server(tmp_path / "cloud.db", host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as srv:
        yield srv, storage, ca_dir


def _boot_partition(tmp_path: Path, cloud: CloudServer, ca_dir: Path, token: str) -> Path:
    img = make_image(tmp_path / "os.img")
    psk = tmp_path / "psk"
    psk.write_text(PSK + "\n")
    assert joyprov(["configure", str(img), "--profile", "mirror", "--cloud", f"127.0.0.1:{cloud.enroll_port}",
                    "--claim-token", token, "--ca-file", str(ca_dir / "ca.pem"), "--hostname", "mirror-07",
                    "--wifi-ssid", "Mall-Staff", "--wifi-psk-file", str(psk)]) == 0
    boot = tmp_path / "boot"
    boot.mkdir()
    subprocess.run([need("mcopy"), "-i", f"{img}@@{BOOT_START * 512}", f"::{FILENAME}", str(boot / FILENAME)],
                   check=True, timeout=60)
    return boot


def _firstboot(tmp_path: Path, boot: Path) -> int:
    return joyedge(["firstboot", "--boot-dir", str(boot), "--data-dir", str(tmp_path / "data"),
                    "--config-out", str(tmp_path / "etc" / "joyedge" / "device.toml"),
                    "--system-root", str(tmp_path / "root")])


def test_firstboot_enrolls_and_erases_the_secrets(tmp_path, cloud_env, capsys):
    cloud, storage, ca_dir = cloud_env
    token = registry.create_claim_token(storage, site_id="site-joycity-sh", store_id="store-2F-012",
                                        profile="mirror")["token"]
    boot = _boot_partition(tmp_path, cloud, ca_dir, token)
    assert _firstboot(tmp_path, boot) == 0
    assert "enrolled" in capsys.readouterr().out
    # enrolled: the cloud knows the device, the device holds a certificate from the cloud CA
    assert registry.get_device(storage, "mirror-07")["site_id"] == "site-joycity-sh"
    assert (tmp_path / "data" / "identity" / "device.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    # the device config is valid and carries the ids and the mTLS address from the enrollment
    cfg = load_config(tmp_path / "etc" / "joyedge" / "device.toml")
    assert (cfg.device.id, cfg.device.site_id, cfg.device.store_id) == ("mirror-07", "site-joycity-sh", "store-2F-012")
    assert cfg.sync.cloud == f"127.0.0.1:{cloud.port}" and cfg.sync.insecure is False
    # the system got its hostname and WiFi (keyfile 0600, as NetworkManager demands)
    assert (tmp_path / "root" / "etc" / "hostname").read_text() == "mirror-07\n"
    keyfile = tmp_path / "root" / "etc" / "NetworkManager" / "system-connections" / "joyedge-wifi.nmconnection"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600 and f"psk={PSK}" in keyfile.read_text()
    # the boot partition keeps no secret, and first boot will not run again
    assert not (boot / FILENAME).exists()
    done = (boot / DONE_FILENAME).read_bytes()
    assert token.encode() not in done and PSK.encode() not in done
    left = parse(done.decode())
    assert left.claim_token is None and left.wifi_psk is None and left.wifi_ssid == "Mall-Staff"
    assert _firstboot(tmp_path, boot) == 0
    assert "already done" in capsys.readouterr().out


def test_failed_enrollment_keeps_the_token_for_a_retry_but_erases_the_passphrase(tmp_path, cloud_env, capsys):
    cloud, storage, ca_dir = cloud_env
    boot = _boot_partition(tmp_path, cloud, ca_dir, "not-a-token-the-cloud-issued")
    assert _firstboot(tmp_path, boot) == 2
    err = capsys.readouterr().err
    assert "enrollment with 127.0.0.1" in err and "new claim token" in err  # refused: not retried
    left = parse((boot / FILENAME).read_text())
    assert left.claim_token == "not-a-token-the-cloud-issued" and left.wifi_psk is None
    assert PSK.encode() not in (boot / FILENAME).read_bytes()
    assert not (tmp_path / "etc" / "joyedge" / "device.toml").exists()
    # the technician issues a real token and the next boot succeeds, keyfile kept from the first run
    token = registry.create_claim_token(storage, site_id="site-joycity-sh", store_id="store-2F-012",
                                        profile="mirror")["token"]
    (boot / FILENAME).write_text((boot / FILENAME).read_text().replace("not-a-token-the-cloud-issued", token))
    assert _firstboot(tmp_path, boot) == 0
    keyfile = tmp_path / "root" / "etc" / "NetworkManager" / "system-connections" / "joyedge-wifi.nmconnection"
    assert f"psk={PSK}" in keyfile.read_text()


def test_bad_or_missing_first_boot_file(tmp_path, capsys):
    boot = tmp_path / "boot"
    boot.mkdir()
    assert _firstboot(tmp_path, boot) == 2
    assert "joyprov configure" in capsys.readouterr().err
    (boot / FILENAME).write_text('format = 1\nprofile = "mirror"\n[cloud]\naddress = "c:1"\nclaim_token = "x"\n')
    assert _firstboot(tmp_path, boot) == 2
    assert "claim_token" in capsys.readouterr().err
    (boot / FILENAME).write_text('format = 2\n')
    assert _firstboot(tmp_path, boot) == 2
    assert "format" in capsys.readouterr().err

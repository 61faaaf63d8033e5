"""First boot that fails: the network is retried with backoff for a bounded time, then left to the next
boot; a bad claim token or an invalid file is not retried. Either way the status file says why, `joyedge
status` reports it and the not-provisioned notice shows it on every kiosk URL (real cloud, real CA, real
gRPC enrollment port on loopback; real HTTP for the notice)."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

from api.firstboot import FILENAME, FirstbootConfig, render
from cloud_stub import ca
from device import firstboot as firstboot_mod
from device.cli import main as joyedge
from device.provisioning_status import NoticeServer, read_status
from tests.device.test_firstboot import cloud_env  # noqa: F401 - the fixture


def _boot(tmp_path: Path, cloud: str, token: str, ca_pem: str) -> Path:
    boot = tmp_path / "boot"
    boot.mkdir(exist_ok=True)
    (boot / FILENAME).write_text(render(FirstbootConfig(profile="mirror", cloud=cloud, claim_token=token,
                                                        hostname="mirror-09", ca_pem=ca_pem)), encoding="utf-8")
    return boot


def _firstboot(tmp_path: Path, boot: Path) -> int:
    return joyedge(["firstboot", "--boot-dir", str(boot), "--data-dir", str(tmp_path / "data"),
                    "--config-out", str(tmp_path / "etc" / "device.toml"), "--system-root", str(tmp_path / "root")])


def _status(tmp_path: Path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = joyedge(["status", "--data-dir", str(tmp_path / "data"), "--config", str(tmp_path / "etc" / "device.toml"),
                    "--json"])
    return code, json.loads(capsys.readouterr().out)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fast_retry(monkeypatch) -> None:
    monkeypatch.setattr(firstboot_mod, "RETRY_FOR_S", 1.0)
    monkeypatch.setattr(firstboot_mod, "BACKOFF_INITIAL_S", 0.05)
    monkeypatch.setattr(firstboot_mod, "BACKOFF_MAX_S", 0.2)


def test_bad_claim_token_is_not_retried_and_the_screens_say_why(tmp_path, cloud_env, fast_retry, capsys):  # noqa: F811
    cloud, _storage, ca_dir = cloud_env
    boot = _boot(tmp_path, f"127.0.0.1:{cloud.enroll_port}", "not-a-token-the-cloud-issued",
                 (ca_dir / "ca.pem").read_text())
    assert _firstboot(tmp_path, boot) == 2
    assert "认领码无效" in capsys.readouterr().err
    st = read_status(tmp_path / "data")
    assert (st.state, st.retryable, st.attempts) == ("failed", False, 1)  # refused once, never retried
    assert "new claim token" in st.reason
    code, status = _status(tmp_path, capsys)
    assert code == 1 and status["provisioned"] is False
    assert status["banner"].startswith("设备未完成初始化：云端拒绝注册") and status["banner"].endswith("（请联系安装人员）")
    with NoticeServer(tmp_path / "data", tmp_path / "etc" / "device.toml", port=0) as notice:
        for path in ("/mirror", "/pos/cashier", "/"):
            page = urllib.request.urlopen(f"http://127.0.0.1:{notice.port}{path}", timeout=10).read().decode()
            assert "设备未完成初始化：云端拒绝注册" in page and "（请联系安装人员）" in page
        api = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{notice.port}/api/provisioning", timeout=10).read())
        assert api["provisioned"] is False and api["firstboot"]["retryable"] is False


def test_no_network_is_retried_with_backoff_then_left_to_the_next_boot(tmp_path, fast_retry, capsys):
    ca_pem = (ca.init_ca(tmp_path / "ca").dir / "ca.pem").read_text()
    boot = _boot(tmp_path, f"127.0.0.1:{_closed_port()}", "a-real-looking-token-1234", ca_pem)
    assert _firstboot(tmp_path, boot) == 2
    st = read_status(tmp_path / "data")
    assert st.state == "failed" and st.retryable is True and st.attempts >= 2
    assert "网络不可用" in st.reason and "next boot tries again" in st.reason
    assert (boot / FILENAME).is_file()  # the token stays for the next boot
    code, status = _status(tmp_path, capsys)
    assert code == 1 and "网络不可用" in status["banner"]


def test_unreadable_file_is_not_retried(tmp_path, fast_retry, capsys):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / FILENAME).write_bytes(b"\xff\xfe not toml at all")
    assert _firstboot(tmp_path, boot) == 2
    st = read_status(tmp_path / "data")
    assert (st.state, st.retryable, st.attempts, st.device_id) == ("failed", False, 1, "")
    # An installer's --device-id is kept with the status: the notice advertises under it (notice_advertise).
    assert joyedge(["firstboot", "--boot-dir", str(boot), "--data-dir", str(tmp_path / "data"), "--config-out",
                    str(tmp_path / "etc" / "device.toml"), "--system-root", str(tmp_path / "root"),
                    "--device-id", "counter-03"]) == 2
    assert read_status(tmp_path / "data").device_id == "counter-03"
    code, status = _status(tmp_path, capsys)
    assert code == 1 and "cannot be read" in status["banner"]


def test_no_first_boot_file_at_all_is_reported(tmp_path, capsys):
    code, status = _status(tmp_path, capsys)
    assert code == 1 and "joyedge-firstboot.toml" in status["banner"] and status["firstboot"] is None

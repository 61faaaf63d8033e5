"""A device whose first boot failed is found by `joyprov discover` and says why: its not-provisioned notice
(device/provisioning_status.NoticeServer) advertises over mDNS on loopback (sockets bound to 127.0.0.1
only), the real `joyprov` CLI lists it with state, reason and a notice_url that answers, the reason follows
the status file, and it is gone once the notice stops or the device is provisioned."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from api.discovery import STATE_NOT_PROVISIONED, STATE_READY, TXT_REASON, TXT_REASON_MAX_BYTES
from api.firstboot import FILENAME, FirstbootConfig, render
from device import notice_advertise
from device.advertise import Advertiser
from device.notice_advertise import cut_utf8, notice_identity
from device.provisioning_status import FirstbootStatus, NoticeServer, write_status

LOOPBACK = "127.0.0.1"
# mDNS on loopback is shared by every test run on this machine: ids are unique per run.
RUN = uuid.uuid4().hex[:8]
TRIES = 6  # discover runs before giving up on an advertisement change reaching a fresh browser
REFUSED = "云端拒绝注册：认领码无效或已使用 (NOT_FOUND); issue a new claim token and run `joyprov configure` again"
NO_NETWORK = "网络不可用：127.0.0.1:9 unreachable; gave up after 3 attempts, the next boot tries again"


def _discover(*extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "provisioning.cli", "discover", "--interface", LOOPBACK,
                           "--timeout", "2", *extra], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def _seen(device_id: str) -> dict | None:
    return next((d for d in json.loads(_discover("--json").stdout) if d["id"] == device_id), None)


def _until(device_id: str, ok: Callable[[dict | None], bool]) -> dict | None:
    """Run `joyprov discover --json` until the device's row satisfies `ok` (the notice polls the status)."""
    for _ in range(TRIES):
        row = _seen(device_id)
        if ok(row):
            return row
    pytest.fail(f"{device_id}: discover never showed the expected row; last {row}")


@pytest.fixture
def failed_boot(tmp_path: Path, monkeypatch) -> tuple[Path, Path, Path]:
    """A device whose first boot was refused: the card's first-boot file (naming it) and a failed status."""
    monkeypatch.setattr(notice_advertise, "POLL_S", 0.05)
    boot, data = tmp_path / "boot", tmp_path / "data"
    boot.mkdir()
    (boot / FILENAME).write_text(render(FirstbootConfig(
        profile="mirror", cloud="127.0.0.1:9", claim_token="a-used-claim-token-1234", hostname=f"mirror-09-{RUN}")),
        encoding="utf-8")
    write_status(data, FirstbootStatus("failed", REFUSED, False, 1))
    return boot, data, tmp_path / "etc" / "device.toml"


def test_a_failed_first_boot_is_discovered_with_its_reason_until_the_notice_stops(failed_boot):
    """GIVEN a notice for a refused first boot and an enrolled device's advertisement
    WHEN `joyprov discover` (JSON and table) THEN the first is not-provisioned with the reason and a working
    notice_url, the second ready as before; a new status changes the advertised reason; stop withdraws it."""
    boot, data, config = failed_boot
    device_id, ready_id = f"mirror-09-{RUN}", f"mirror-07-{RUN}"
    assert notice_identity([boot]).device_id == device_id  # the id firstboot would have enrolled under
    with Advertiser(device_id=ready_id, profile="mirror", version="0.1.0", site=f"site-{RUN}", port=50443,
                    interfaces=[LOOPBACK]), \
         NoticeServer(data, config, port=0, advertise=True, interfaces=[LOOPBACK],
                      identity=notice_identity([boot]), version="0.1.0") as notice:
        rows = {d["id"]: d for d in json.loads(_discover("--json").stdout)}
        row = rows.get(device_id) or _until(device_id, lambda r: r is not None)
        url = f"http://{LOOPBACK}:{notice.port}/"
        assert (row["state"], row["reason"], row["notice_url"], row["port"]) == (
            STATE_NOT_PROVISIONED, REFUSED, url, notice.port)
        assert (row["profile"], row["site"], row["version"]) == ("mirror", "", "0.1.0")
        api = json.loads(urllib.request.urlopen(url + "api/provisioning", timeout=10).read())
        assert api["provisioned"] is False and api["reason"] == REFUSED
        ready = rows.get(ready_id) or _until(ready_id, lambda r: r is not None)
        assert (ready["state"], ready["reason"], ready["notice_url"]) == (STATE_READY, "", "")

        table = _discover().stdout.splitlines()
        at = next(i for i, line in enumerate(table) if line.startswith(device_id + " "))
        assert table[at + 1].strip() == f"NOT-PROVISIONED: {REFUSED}  — {url}"
        assert table[-1].startswith("next: ") and device_id in table[-1] and ready_id not in table[-1]
        assert "power-cycle" in table[-1] and "joyprov configure" in table[-1]
        ready_at = next(i for i, line in enumerate(table) if line.startswith(ready_id + " "))
        assert "127.0.0.1:50443" in table[ready_at] and "NOT-PROVISIONED" not in table[ready_at + 1]

        # firstboot tried again (next boot) and failed otherwise: the advertisement follows the file
        write_status(data, FirstbootStatus("failed", NO_NETWORK, True, 3))
        row = _until(device_id, lambda r: r is not None and r["reason"] == NO_NETWORK)
        assert row["state"] == STATE_NOT_PROVISIONED and row["notice_url"] == url

        # a reason longer than a TXT string allows is cut between characters, marked with "…"
        long_reason = "a" + "云端拒绝注册，" * 40
        write_status(data, FirstbootStatus("failed", long_reason, False, 4))
        row = _until(device_id, lambda r: r is not None and r["reason"] != NO_NETWORK)
        cut = row["reason"]
        assert cut.endswith("…") and long_reason.startswith(cut[:-1])
        assert TXT_REASON_MAX_BYTES - 3 < len(cut.encode()) <= TXT_REASON_MAX_BYTES
        assert notice.advertiser is not None and notice.advertiser.advertised[TXT_REASON] == cut
    assert _until(device_id, lambda r: r is None) is None  # stopped: the goodbye withdrew it


def test_a_device_provisioned_while_the_notice_runs_withdraws_its_advertisement(failed_boot):
    """The admin API advertises the same name once the device is enrolled: the notice must let it go."""
    boot, data, config = failed_boot
    device_id = f"mirror-09-{RUN}"
    with NoticeServer(data, config, port=0, advertise=True, interfaces=[LOOPBACK],
                      identity=notice_identity([boot]), version="0.1.0") as notice:
        assert _until(device_id, lambda r: r is not None)["state"] == STATE_NOT_PROVISIONED
        config.parent.mkdir(parents=True)
        config.write_text("# written by firstboot\n", encoding="utf-8")
        write_status(data, FirstbootStatus("done", "", False, 2))
        assert _until(device_id, lambda r: r is None) is None
        assert notice.advertiser is not None and notice.advertiser.advertised == {}
        # the name is free: the enrolled device's admin API can advertise it now
        with Advertiser(device_id=device_id, profile="mirror", version="0.1.0", site=f"site-{RUN}", port=50443,
                        interfaces=[LOOPBACK]):
            assert _until(device_id, lambda r: r is not None)["state"] == STATE_READY


@pytest.mark.parametrize("text, max_bytes, expected", [
    ("短", 200, "短"),
    ("x" * 200, 200, "x" * 200),  # exactly fits: not cut
    ("x" * 201, 200, "x" * 197 + "…"),
    ("ab" + "云" * 10, 12, "ab云云…"),  # 9 bytes of room before "…": 2 + 3 + 3, the third 云 cut in half
    ("云" * 10, 10, "云云…"),  # 7 bytes of room: the third 云's first byte is dropped, not left broken
])
def test_reason_is_cut_between_characters(text, max_bytes, expected):
    got = cut_utf8(text, max_bytes)
    assert got == expected and len(got.encode()) <= max_bytes
    got.encode().decode("utf-8")  # still valid UTF-8


def test_identity_falls_back_to_the_hostname_when_the_card_cannot_be_read(tmp_path):
    """An unreadable first-boot file is one of the failures reported: the notice still has a name."""
    (tmp_path / FILENAME).write_bytes(b"\xff\xfe not toml")
    import socket

    assert notice_identity([tmp_path]).device_id == socket.gethostname().split(".", 1)[0]
    assert notice_identity([tmp_path]).profile == ""


def test_the_notice_command_advertises_and_says_goodbye_on_sigterm(failed_boot):
    """GIVEN `joyedge firstboot-notice` as the unit runs it (bound and advertised on loopback here)
    WHEN it is found and then stopped the way systemd stops it (SIGTERM) THEN it exits 0 (through stop(),
    which sends the mDNS goodbye; Python's default SIGTERM would exit -15 without one) and is gone."""
    import re
    import signal

    boot, data, config = failed_boot
    device_id = f"mirror-09-{RUN}"
    proc = subprocess.Popen([sys.executable, "-m", "device.cli", "firstboot-notice", "--data-dir", str(data),
                             "--config", str(config), "--port", "0", "--interface", LOOPBACK,
                             "--boot-dir", str(boot)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert f"advertised as {device_id}._joyedge._tcp.local." in line, line + proc.stderr.read()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        row = _until(device_id, lambda r: r is not None)
        assert (row["state"], row["reason"], row["notice_url"]) == (
            STATE_NOT_PROVISIONED, REFUSED, f"http://{LOOPBACK}:{port}/")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert _until(device_id, lambda r: r is None) is None


def test_identity_is_the_id_firstboot_was_told_to_use(failed_boot, tmp_path):
    """`joyedge firstboot --device-id X` keeps X in its status file, and the notice advertises as X — not as
    the id it would derive from the card — so the technician finds the name the installer gave it."""
    boot, data, _ = failed_boot
    derived = notice_identity([boot], data_dir=data)
    assert derived.device_id == f"mirror-09-{RUN}" and derived.profile == "mirror"
    write_status(data, FirstbootStatus("failed", REFUSED, False, 1, device_id="counter-03"))
    told = notice_identity([boot], data_dir=data)
    assert (told.device_id, told.profile) == ("counter-03", "mirror")
    assert notice_identity([tmp_path / "no-card"], data_dir=data).device_id == "counter-03"

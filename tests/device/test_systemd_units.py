"""hardware/systemd: every unit parses (systemd-analyze verify when present), runs a command `joyedge`
accepts, and the long-running ones are Type=notify with a watchdog their main loop feeds."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import build_parser

UNITS = Path(__file__).resolve().parents[2] / "hardware" / "systemd"
JOYEDGE = Path(sys.executable).parent / "joyedge"
WATCHDOG = {"joyedge-run.service": 60, "joyedge-sync.service": 120}


def _unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read(UNITS / name)
    return cp


@pytest.mark.parametrize("name", sorted(p.name for p in UNITS.glob("*.service")))
def test_unit_runs_a_joyedge_command(name):
    service = _unit(name)["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/joyedge/.venv/bin/joyedge"
    build_parser().parse_args(argv[1:])
    if name in WATCHDOG:
        assert (service["Type"], service["NotifyAccess"]) == ("notify", "main")
        assert int(service["WatchdogSec"]) == WATCHDOG[name]
    elif name == "joyedge-firstboot.service":
        unit = _unit(name)["Unit"]
        assert service["Type"] == "oneshot" and "joyedge-firstboot.toml" in unit["ConditionPathExists"]
        assert {"joyedge-run.service", "joyedge-sync.service"} <= set(unit["Before"].split())
    else:
        assert service["Restart"] == "always"


def _verify(tmp_path: Path, name: str, text: str) -> subprocess.CompletedProcess:
    # The installed path does not exist here: point ExecStart at this venv's joyedge for the check.
    (tmp_path / name).write_text(text.replace("/opt/joyedge/.venv/bin/joyedge", str(JOYEDGE)), encoding="utf-8")
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    for path in sorted(UNITS.glob("*.service")):
        result = _verify(tmp_path, path.name, path.read_text(encoding="utf-8"))
        assert result.returncode == 0 and not result.stderr.strip(), (path.name, result.stderr)
    # and the check itself catches a broken unit
    broken = _verify(tmp_path, "broken.service", "[Service]\nType=notfy\nExecStart=relative/path\n")
    assert broken.returncode != 0 or broken.stderr.strip()


def test_a_device_that_is_not_provisioned_shows_the_notice_instead_of_looping():
    """run/sync/admin need the config firstboot writes: without it they are skipped (a condition, not a
    failure, so no restart loop), and joyedge-notice — only then — serves the reason on the kiosk port."""
    for name in ("joyedge-run.service", "joyedge-sync.service", "joyedge-admin.service"):
        unit = _unit(name)["Unit"]
        assert unit["ConditionPathExists"] == "/etc/joyedge/device.toml", name
        assert "joyedge-firstboot.service" in unit["After"].split(), name
    notice = _unit("joyedge-notice.service")
    assert notice["Unit"]["ConditionPathExists"] == "!/etc/joyedge/device.toml"
    assert "joyedge-firstboot.service" in notice["Unit"]["After"].split()
    assert "joyedge-run.service" in notice["Unit"]["Conflicts"].split()
    argv = shlex.split(notice["Service"]["ExecStart"])
    assert argv[1] == "firstboot-notice" and argv[argv.index("--port") + 1] == "8080"
    assert "joyedge-notice.service" in _unit("joyedge-firstboot.service")["Unit"]["Before"].split()

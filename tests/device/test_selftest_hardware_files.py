"""hardware/: the systemd units run real `joyedge` commands with a restart policy; udev names match profiles."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from device.cli import build_parser
from device.config import load_config

HW = Path(__file__).resolve().parents[2] / "hardware"


@pytest.mark.parametrize("unit", ["joyedge-run.service", "joyedge-sync.service"])
def test_units_restart_and_run_a_parsable_command(unit):
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read(HW / "systemd" / unit)
    service = cp["Service"]
    assert service["Restart"] == "always" and float(service["RestartSec"]) > 0
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/joyedge")
    build_parser().parse_args(argv[1:])  # the command line is one `joyedge` accepts


def test_udev_names_are_the_ones_profiles_use():
    rules = (HW / "udev" / "99-joyedge.rules").read_text()
    flagship = load_config(profile="pos-flagship")
    mirror = load_config(profile="mirror")
    assert 'SYMLINK+="input/by-id/joyedge-scanner"' in rules and flagship.peripherals.scanner.source.endswith("joyedge-scanner")
    assert 'SYMLINK+="joyedge-display"' in rules and "/dev/joyedge-display" in flagship.peripherals.customer_display.uri
    assert 'SYMLINK+="joyedge-depth"' in rules and flagship.depth_camera.uri.endswith("/dev/joyedge-depth")
    assert 'SYMLINK+="input/by-id/joyedge-call-button"' in rules and mirror.peripherals.call_button.source.endswith("joyedge-call-button")

"""Profiles and device config files: strict validation with errors an installer can act on."""

from __future__ import annotations

import pytest

from device.cli import main
from device.config import ConfigError, load_config


@pytest.mark.parametrize("profile", ["mirror", "pos-flagship", "pos-mobile"])
def test_every_profile_validates(profile):
    cfg = load_config(profile=profile)
    assert cfg.device.kind == profile
    assert cfg.screens and cfg.camera.uri


def test_flagship_has_depth_and_full_range_mobile_has_no_depth():
    assert load_config(profile="pos-flagship").depth_camera is not None
    assert load_config(profile="pos-flagship").inference.detector == "full"
    assert load_config(profile="pos-mobile").depth_camera is None


def test_device_file_overrides_profile(tmp_path):
    f = tmp_path / "dev.toml"
    f.write_text('profile = "mirror"\n[device]\nid = "mirror-07"\n[camera]\nuri = "replay:/tmp/x"\nfps = 5\n')
    cfg = load_config(f)
    assert cfg.device.id == "mirror-07"
    assert cfg.camera.uri == "replay:/tmp/x" and cfg.camera.fps == 5
    assert cfg.camera.width == 1280  # from the profile


def test_unknown_key_names_key_file_and_line(tmp_path):
    f = tmp_path / "dev.toml"
    f.write_text('profile = "mirror"\n\n[camera]\nuri = "replay:/x"\nfsp = 15\n')
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "camera.fsp: unknown key" in str(err.value)
    assert f"{f} (line 5)" in str(err.value)


def test_bad_values_and_missing_profile_are_clear(tmp_path):
    f = tmp_path / "dev.toml"
    f.write_text('profile = "mirror"\n[camera]\nuri = "usb:cam"\n')
    with pytest.raises(ConfigError, match="scheme must be"):
        load_config(f)
    f.write_text("[device]\nid = 'x'\n")
    with pytest.raises(ConfigError, match="no profile given"):
        load_config(f)
    f.write_text("profile = [broken\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)


def test_config_check_cli(tmp_path, capsys):
    f = tmp_path / "dev.toml"
    f.write_text('profile = "pos-flagship"\n[peripherals.printer]\nuri = "file:/tmp/r.bin"\n')
    assert main(["config", "check", str(f)]) == 0
    out = capsys.readouterr().out
    assert '[peripherals.printer]\nuri = "file:/tmp/r.bin"\npaper_mm = 80' in out
    f.write_text('profile = "pos-flagship"\n[peripherals.printr]\nuri = "x"\n')
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "peripherals.printr: unknown key" in err and "line 2" in err

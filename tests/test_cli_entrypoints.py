"""The three console scripts exist, answer --help, and `joyedge models` reports on the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script,words", [("joyedge", "demo"), ("joyedge-cloud", "seed-demo"), ("joyprov", "version")])
def test_help(script, words):
    done = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and words in done.stdout


def test_versions():
    for script in ("joyedge", "joyprov"):
        done = subprocess.run([str(BIN / script), "version"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith(f"{script} 0.")


def test_models_verify_names_a_missing_model_and_the_fix(tmp_path):
    done = subprocess.run([str(BIN / "joyedge"), "models", "verify", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "blazeface_short" in done.stdout and "missing" in done.stdout
    assert "joyedge models fetch" in done.stderr


def test_models_list_shows_licences():
    done = subprocess.run([str(BIN / "joyedge"), "models", "list"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "dlib_resnet_v1" in done.stdout and "face_detection_short_range.tflite" in done.stdout

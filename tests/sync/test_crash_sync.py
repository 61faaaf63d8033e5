"""The crash harness (bench/crash_sync.py) with N=20: daemon and app SIGKILLed at random points
while the cloud keeps changing; nothing lost, nothing applied twice, the replica equals the cloud."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_crash_harness_20_iterations_loses_nothing():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "crash_sync.py"), "--iterations", "20", "--json",
                           "--seed", "3"], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["iterations"] == 20
    assert result["detail"]["events"] > 0 and result["detail"]["kills"]["daemon"] > 0
    assert (result["lost"], result["duplicates"], result["replica_matches"]) == (0, 0, True), result


@pytest.mark.slow
def test_crash_harness_200_iterations_loses_nothing():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "crash_sync.py"), "--iterations", "200", "--json"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    result = json.loads(done.stdout)
    assert (result["lost"], result["duplicates"], result["replica_matches"]) == (0, 0, True), result

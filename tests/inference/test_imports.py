"""Importing inference is cheap and side-effect free, and it imports nothing of ours beyond itself."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys, pkgutil, importlib, inference
heavy = [m for m in ("dlib", "ai_edge_litert", "tflite_runtime", "onnxruntime") if m in sys.modules]
assert not heavy, heavy
for mod in pkgutil.walk_packages(inference.__path__, "inference."):
    importlib.import_module(mod.name)
ours = {"device", "sync", "cloud_stub", "kiosk_ui", "drivers", "api", "provisioning"}
bad = sorted(m for m in sys.modules if m.split(".")[0] in ours)
assert not bad, bad
"""


def test_import_is_cheap_and_isolated():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

"""The layout rules of DESIGN.md, the committed gRPC code, and import hygiene."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["api", "drivers", "inference", "sync", "device", "kiosk_ui", "cloud_stub", "provisioning"]
# Who may NOT import whom (DESIGN.md "Layout"); the device side never imports the cloud.
FORBIDDEN = {
    "api": {"drivers", "inference", "sync", "device", "kiosk_ui", "cloud_stub", "provisioning"},
    "drivers": {"inference", "sync", "device", "kiosk_ui", "cloud_stub", "provisioning"},
    "inference": {"drivers", "sync", "device", "kiosk_ui", "cloud_stub", "provisioning"},
    "kiosk_ui": {"drivers", "inference", "sync", "device", "cloud_stub", "provisioning"},
    "sync": {"drivers", "inference", "device", "kiosk_ui", "cloud_stub", "provisioning"},
    "device": {"cloud_stub", "provisioning"},
    "cloud_stub": {"drivers", "sync", "device", "kiosk_ui", "provisioning"},
    "provisioning": {"drivers", "inference", "sync", "device", "kiosk_ui", "cloud_stub"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (REPO / package).rglob("*.py") if "__pycache__" not in p.parts)


def test_import_rules_of_design_md_hold():
    """GIVEN every module of every package WHEN its imports are read THEN none crosses a forbidden line."""
    violations = []
    for package, banned in FORBIDDEN.items():
        for path in _modules(package):
            for lineno, module in _imports(path):
                if module.split(".")[0] in banned:
                    violations.append(f"{path.relative_to(REPO)}:{lineno} imports {module}")
    assert not violations, "import rules broken:\n" + "\n".join(violations)


def test_the_import_rule_check_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from cloud_stub.storage import SqliteStorage\nimport device.app\n")
    assert [m for _, m in _imports(bad)] == ["cloud_stub.storage", "device.app"]


def test_every_module_imports_cleanly_without_side_effects():
    """Import every module in a fresh interpreter: no cycles, no I/O or threads at import time."""
    modules = []
    for package in PACKAGES:
        for path in _modules(package):
            rel = path.relative_to(REPO).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            if "picamera" in name:  # needs libcamera; only importable on a Raspberry Pi
                continue
            modules.append(name)
    code = (
        "import importlib, threading, sys\n"
        f"mods = {modules!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        "extra = [t.name for t in threading.enumerate() if t is not threading.main_thread()]\n"
        "assert not extra, f'threads started at import time: {extra}'\n"
        "heavy = [m for m in ('dlib', 'onnxruntime', 'ai_edge_litert') if m in sys.modules]\n"
        "assert not heavy, f'heavy runtimes imported at import time: {heavy}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def test_generated_grpc_code_is_fresh(tmp_path):
    """The committed api/v1/*_pb2*.py match what protoc generates from the .proto files now."""
    protos = sorted(str(p.relative_to(REPO)) for p in (REPO / "api" / "v1").glob("*.proto"))
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", f"--python_out={tmp_path}",
         f"--grpc_python_out={tmp_path}", f"--pyi_out={tmp_path}", *protos],
        cwd=REPO, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    stale = []
    for generated in sorted((tmp_path / "api" / "v1").iterdir()):
        committed = REPO / "api" / "v1" / generated.name
        if not committed.exists() or committed.read_bytes() != generated.read_bytes():
            stale.append(generated.name)
    assert not stale, f"generated code is stale, run `make proto`: {stale}"

"""`bench/inference.py --quick --json` prints one JSON object with every key (slow: runs in `make bench`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"detect_vs_hog", "detect_overhead", "identify_vs_face_recognition", "rank1_ours",
        "rank1_face_recognition", "fnir_at_fpir_1pct_ours", "fnir_at_fpir_1pct_face_recognition",
        "search_100k_vs_bandwidth", "search_100k_vs_faiss"}


@pytest.mark.slow
def test_quick_bench_prints_one_json_object(shared_data):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "inference.py"), "--quick", "--json",
                           "--data", str(shared_data)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert KEYS <= set(result)
    assert result["rank1_ours"] >= result["rank1_face_recognition"]
    assert result["detail"]["identify"]["failures_to_detect_ours"] == 0

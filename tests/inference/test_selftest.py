"""inference.selftest: every model gets a row; missing files and an unusable Edge TPU are reported."""

from __future__ import annotations

import shutil

from inference.selftest import check_models, summarize_accelerator
from inference.store import ModelStore


def test_every_model_runs_on_cpu(model_store):
    checks = check_models(model_store, accelerator="cpu", runs=2)
    assert [c.name for c in checks] == [e.name for e in model_store.entries()]
    runnable = [c for c in checks if c.backend != "data"]
    assert all(c.status == "ok" for c in checks), checks
    assert all(c.median_ms is not None and c.median_ms > 0 for c in runnable)
    short = next(c for c in checks if c.name == "blazeface_short")
    assert (short.backend, short.accelerator, short.input_shape) == ("litert", "cpu", "[1,128,128,3]")


def test_auto_falls_back_with_reason_and_required_edgetpu_is_degraded(model_store):
    auto = {c.name: c for c in check_models(model_store, accelerator="auto", runs=1)}
    assert auto["blazeface_short"].status == "ok"
    assert auto["blazeface_short"].accelerator == "cpu"
    assert "face_detection_short_range_edgetpu.tflite" in auto["blazeface_short"].edgetpu_reason
    assert "libedgetpu" not in auto["blazeface_short"].detail  # the reason is said once, not per row
    required = {c.name: c for c in check_models(model_store, accelerator="edgetpu", runs=1)}
    assert required["blazeface_short"].status == "degraded"
    assert "libedgetpu" in required["blazeface_short"].edgetpu_reason
    assert required["blazeface_short"].median_ms is not None


def test_the_shared_edgetpu_reason_is_summarized_once(model_store):
    """GIVEN no Edge TPU delegate and no *_edgetpu.tflite files, WHEN the checks are summarized,
    THEN the delegate's reason is one shared `reason` and only what differs stays per model."""
    for requested in ("auto", "edgetpu"):
        checks = check_models(model_store, accelerator=requested, runs=1)
        tflite = [c.name for c in checks if c.backend == "litert"]
        summary = summarize_accelerator(requested, {c.name: c.edgetpu_reason for c in checks}, [])
        assert summary.cpu_models == tflite and summary.edgetpu_models == []
        assert "libedgetpu.so.1 did not load" in summary.reason
        assert set(summary.per_model) == set(tflite)
        assert all("did not load" not in why for why in summary.per_model.values())
        line = summary.line()
        assert line.count("did not load") == 1 and "no *_edgetpu.tflite model installed for all of them" in line
    assert summarize_accelerator("cpu", {c.name: c.edgetpu_reason for c in
                                         check_models(model_store, accelerator="cpu", runs=1)}, []).line() == ""


def test_missing_and_truncated_files_are_reported_with_the_fix(model_store, tmp_path):
    names = ["blazeface_short", "gender_v1"]
    entries = [model_store.entry(n) for n in names]
    store = ModelStore(tmp_path, manifest=entries)
    checks = {c.name: c for c in check_models(store, runs=1)}
    assert all(c.status == "missing" and "joyedge models fetch" in c.detail for c in checks.values())
    # A file of the right size but garbage content: the runtime refuses it, still a row, not a crash.
    for e in entries:
        data = bytearray((model_store.root / e.file).read_bytes())
        data[: len(data) // 2] = b"\0" * (len(data) // 2)
        (tmp_path / e.file).write_bytes(bytes(data))
    checks = {c.name: c for c in check_models(store, runs=1)}
    assert all(c.status == "missing" and "joyedge models fetch" in c.detail for c in checks.values()), checks
    shutil.copy(model_store.root / entries[0].file, tmp_path / entries[0].file)
    assert check_models(store, accelerator="cpu", runs=1)[0].status == "ok"

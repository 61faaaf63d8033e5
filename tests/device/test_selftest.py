"""`joyedge selftest` and `joyedge print-test` end to end through the CLI."""

from __future__ import annotations

import json

import pytest

from device.cli import main
from device.config import ConfigError, load_config
from device.selftest import check_peripherals, render_table

FLAGSHIP = ["camera", "depth_camera", "printer", "scanner", "customer_display", "cash_drawer"]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_flagship_fake_hardware_all_ok(capsys):
    assert main(["selftest", "hardware", "--profile", "pos-flagship", "--fake-hardware", "--json"]) == 0
    out = _json(capsys)
    assert out["ok"] is True and out["profile"] == "pos-flagship"
    assert [c["name"] for c in out["checks"]] == FLAGSHIP
    assert {c["status"] for c in out["checks"]} == {"ok"}


def test_unplugged_fake_is_missing_and_exits_nonzero(capsys):
    code = main(["selftest", "hardware", "--profile", "pos-flagship", "--fake-hardware", "--unplug", "printer", "--json"])
    out = _json(capsys)
    status = {c["name"]: c["status"] for c in out["checks"]}
    assert code == 1 and out["ok"] is False
    assert status["printer"] == "missing" and status["cash_drawer"] == "missing"  # the drawer hangs off it
    assert status["scanner"] == status["camera"] == "ok"


def test_all_target_lists_peripherals_then_models(capsys):
    code = main(["selftest", "--profile", "mirror", "--fake-hardware", "--runs", "1", "--json"])
    out = _json(capsys)
    kinds = [c["kind"] for c in out["checks"]]
    assert kinds[:2] == ["peripheral", "peripheral"] and set(kinds[2:]) == {"model"}
    assert {c["name"] for c in out["checks"] if c["kind"] == "model"} >= {"blazeface_short", "dlib_resnet_v1"}
    assert code == (1 if any(c["status"] == "missing" for c in out["checks"]) else 0)


def test_edgetpu_reason_is_one_summary_line_not_on_every_model_row(capsys):
    """GIVEN accelerator auto on a machine without an Edge TPU, THEN the table says the reason once
    (its own line) and the model rows stay short; the JSON keeps it all (top-level `accelerator`)."""
    main(["selftest", "inference", "--profile", "mirror", "--runs", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert sum("did not load" in line for line in lines) == 1
    summary = next(line for line in lines if line.startswith("accelerator: auto; Edge TPU not used by"))
    assert "blazeface_short" in summary and "libedgetpu.so.1" in summary
    rows = {line.split()[0]: line for line in lines[1:] if line.startswith("blazeface")}
    assert rows and all("Edge TPU not used" in r and "libedgetpu" not in r for r in rows.values())
    main(["selftest", "inference", "--profile", "mirror", "--runs", "1", "--json"])
    out = _json(capsys)
    acc = out["accelerator"]
    assert acc["requested"] == "auto" and "blazeface_short" in acc["cpu_models"]
    assert "libedgetpu.so.1" in acc["reason"]
    assert "face_detection_short_range_edgetpu.tflite" in acc["per_model"]["blazeface_short"]
    row = next(c for c in out["checks"] if c["name"] == "blazeface_short")
    assert row["accelerator"] == "cpu" and "libedgetpu.so.1" in row["accelerator_reason"]


def test_real_hardware_absent_here_is_missing_with_a_hint(tmp_path, capsys):
    f = tmp_path / "dev.toml"
    f.write_text(f'profile = "pos-mobile"\n[camera]\nuri = "replay:{tmp_path}/nothing"\n'
                 f'[peripherals.printer]\nuri = "file:{tmp_path}/r.bin"\npaper_mm = 58\n'
                 f'[peripherals.scanner]\nkind = "serial"\nsource = "{tmp_path}/ttyNONE"\n')
    assert main(["selftest", "hardware", "--config", str(f)]) == 1
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert "missing" in rows["camera"] and "does not exist" in rows["camera"]
    assert " ok " in rows["printer"] and "cannot report paper" in rows["printer"]
    assert "missing" in rows["scanner"] and "not found" in rows["scanner"]
    assert text.splitlines()[-1] == "3 checked: 1 ok, 0 degraded, 2 missing"


def test_paper_out_is_degraded_not_missing():
    from device.peripherals import build_peripherals
    from device.selftest import probe

    cfg = load_config(profile="pos-flagship")
    printer = build_peripherals(cfg, fake=True)["printer"]
    printer.device.paper = "out"
    health = probe(printer)
    assert health.status == "degraded" and "load a new roll" in health.detail


def test_unplug_needs_fake_hardware_and_a_known_name(capsys):
    assert main(["selftest", "--profile", "pos-flagship", "--unplug", "printer"]) == 2
    assert "--fake-hardware" in capsys.readouterr().err
    assert main(["selftest", "--profile", "mirror", "--fake-hardware", "--unplug", "printer"]) == 2
    assert "this device has camera, call_button" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="kick pulse"):
        load_config(profile="pos-mobile", overrides={"peripherals": {"cash_drawer": {"via": "printer"}, "printer": None}})


def test_table_rendering():
    rows = check_peripherals(load_config(profile="mirror"), fake=True)
    table = render_table(rows).splitlines()
    assert table[0].split() == ["name", "backend", "status", "detail"]
    assert table[-1] == "2 checked: 2 ok, 0 degraded, 0 missing"


def test_print_test_to_file(tmp_path, capsys):
    out = tmp_path / "r.bin"
    assert main(["print-test", "--printer", f"file:{out}"]) == 0
    job = out.read_bytes()
    assert job.startswith(b"\x1b@")  # ESC @
    assert "悦云".encode("gb18030") in job and "谢谢惠顾，欢迎再来！".encode("gb18030") in job
    assert b"\x1d(k" in job and b"1P0https://joyedge.example/selftest" in job  # QR stored ...
    assert b"\x1d(k\x03\x001Q0" in job  # ... and printed
    assert job.endswith(b"\x1dVA\x00")  # cut
    assert f"{len(job)} bytes to file:{out}" in capsys.readouterr().out


def test_print_test_to_an_unreachable_printer_is_a_clear_error(capsys):
    assert main(["print-test", "--printer", "tcp://127.0.0.1:1"]) == 2
    assert "not found" in capsys.readouterr().err

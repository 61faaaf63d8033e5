"""joyedge-cloud CLI: serve as a real subprocess, seed-demo (with real photos), member list, user errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_stub.cli import main
from cloud_stub.storage import STREAM_TEMPLATES, SqliteStorage

REPO = Path(__file__).resolve().parents[2]


def test_cloud_stub_imports_cleanly_without_inference() -> None:
    """Importing every cloud_stub module has no side effects and does not pull in inference."""
    code = (
        "import sys, cloud_stub.cli, cloud_stub.demo, cloud_stub.errors, cloud_stub.server, "
        "cloud_stub.storage, cloud_stub.sync_service; "
        "assert 'inference' not in sys.modules, 'cloud_stub imported inference at import time'"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env, timeout=60)


def test_serve_prints_its_line_answers_health_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "var" / "cloud.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud_stub.cli", "serve", "--db", str(db), "--port", "0", "--insecure"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )
    try:
        line = proc.stdout.readline()  # the server prints once it is listening
        match = re.fullmatch(r"joyedge-cloud: serving on 127\.0\.0\.1:(\d+) \(db (.+)\)\n", line)
        assert match, f"unexpected first line {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        assert match.group(2) == str(db) and db.is_file()
        with grpc.insecure_channel(f"127.0.0.1:{match.group(1)}") as channel:
            resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_serve_on_a_taken_port_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cloud_stub.server import start_server

    with start_server(tmp_path / "a.db", port=0) as srv:
        rc = main(["serve", "--db", str(tmp_path / "b.db"), "--port", str(srv.port), "--insecure"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("joyedge-cloud: error: ") and "in use" in err and "Traceback" not in err


def test_seed_demo_json_and_member_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "new" / "cloud.db"
    assert main(["seed-demo", "--db", str(db), "--members", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["site_id"] == "site-demo" and len(report["store_ids"]) == 2
    assert [m["person"] for m in report["members"]] == [None] * 5
    assert main(["member", "list", "--db", str(db), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["member_id"] for m in listed} == {m["member_id"] for m in report["members"]}
    assert {m["name"] for m in listed} == {m["name"] for m in report["members"]}
    assert main(["member", "list", "--db", str(db)]) == 0
    assert report["members"][0]["name"] in capsys.readouterr().out


def test_seed_demo_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = []
    for name in ("a.db", "b.db"):
        assert main(["seed-demo", "--db", str(tmp_path / name), "--json", "--seed", "11"]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["member", "list", "--db", "{tmp}/missing.db"], "no database"),
        (["seed-demo", "--db", "{tmp}/x.db", "--faces", "{tmp}/no-such-faces"], "faces folder"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("joyedge-cloud: error: ") and needle in err and err.count("\n") == 1


def test_unreadable_db_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 200)
    assert main(["member", "list", "--db", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("joyedge-cloud: error: ") and err.count("\n") == 1


def test_seed_demo_faces_enrolls_ten_members_with_three_templates(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN 10 LFW identities x 10 photos WHEN seeded with faces THEN 10 members get 3 templates each."""
    faces = shared_data / "lfw_original_10id"
    db = tmp_path / "cloud.db"
    rc = main(["seed-demo", "--db", str(db), "--faces", str(faces), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    people = sorted(p.name for p in faces.iterdir() if p.is_dir())
    assert [m["person"] for m in report["members"]] == people
    for m in report["members"]:
        assert m["templates"] == 3 and len(m["enrolled"]) == 3, m
        assert m["enrolled"] == sorted(m["enrolled"]) and not m["skipped"]
    assert len({m["name"] for m in report["members"]}) == 10
    changes, _ = SqliteStorage(db).changes(STREAM_TEMPLATES, "site-demo", 0, 1000)
    assert len(changes) == 30 and all(len(c[3]["vector"]) == 128 * 4 for c in changes)

"""joyedge-cloud admin commands: seed-demo determinism by seed, member list/show/transactions, tags compute."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_stub.cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_demo_is_deterministic_by_seed_and_admin_commands_show_it(tmp_path: Path, capsys) -> None:
    dbs = [tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"]
    seeds = [11, 11, 12]
    reports = [_json(capsys, ["seed-demo", "--db", str(db), "--members", "25", "--days", "200", "--seed", str(s),
                              "--json"]) for db, s in zip(dbs, seeds, strict=True)]
    assert reports[0]["transactions"] > 25 and reports[0]["tags"] > 25 * 5
    lists = [_json(capsys, ["member", "list", "--db", str(db), "--json"]) for db in dbs]
    txns = [_json(capsys, ["member", "transactions", "site-demo-m003", "--db", str(db), "--json"]) for db in dbs]
    assert lists[0] == lists[1] and txns[0] == txns[1]
    assert lists[0] != lists[2] or txns[0] != txns[2]
    assert set(txns[0][0]) >= {"date", "store", "brand", "amount_cents"}
    assert all(t["amount_cents"] > 0 for t in txns[0])
    limited = _json(capsys, ["member", "list", "--db", str(dbs[0]), "--limit", "5", "--json"])
    assert [m["member_id"] for m in limited] == [m["member_id"] for m in lists[0][:5]]
    show = _json(capsys, ["member", "show", "site-demo-m003", "--db", str(dbs[0]), "--json"])
    assert set(show) == {"profile", "tags", "credit", "coupons", "linked_ids"}
    assert "phone_hash" not in show["profile"] and len(show["profile"]["phone_last4"]) == 4
    kinds = {t["kind"] for t in show["tags"]}
    assert {"activity", "frequency", "monetary", "rfm", "gender", "generation", "zodiac", "segment",
            "churn_risk", "ltv"} <= kinds
    assert show["credit"]["grade"] in {"AA", "A", "B", "C", "D"}


def test_tags_compute_shows_progress_and_unknown_member_is_one_line(tmp_path: Path, capsys) -> None:
    db = tmp_path / "c.db"
    assert main(["seed-demo", "--db", str(db), "--members", "8", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["tags", "compute", "--db", str(db)]) == 0
    out = capsys.readouterr()
    assert "aggregating transactions" in out.err and "writing tags" in out.err and "k-means" in out.out
    assert main(["member", "show", "nobody", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("joyedge-cloud: error:") and "nobody" in err and "Traceback" not in err
    assert main(["seed-demo", "--db", str(db), "--days", "0"]) == 2

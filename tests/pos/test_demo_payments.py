"""The acceptance line: `joyedge demo --headless --duration 60 --json` reports π-POS `payments` with at
least one approved pay-by-face and one refused spoof attempt, each with amount, mode and status."""

from __future__ import annotations

import json

from tests.pos.conftest import cli


def test_demo_reports_an_approved_face_payment_and_a_refused_spoof(tmp_path):
    done = cli("joyedge", "demo", "--headless", "--duration", "60", "--json", "--port", "0",
               "--workdir", str(tmp_path / "demo"), timeout=300)
    payments = json.loads(done.stdout.strip().splitlines()[-1])["payments"]
    assert all({"amount", "mode", "status"} <= set(p) and p["mode"] in ("online", "offline", "cash")
               for p in payments), payments
    face = [p for p in payments if p["method"] == "face"]
    assert any(p["status"] == "approved" and p["amount"] > 0 for p in face), payments
    spoofs = [p for p in face if p["attempt"].startswith("spoof")]
    assert spoofs and all(p["status"] == "refused" and "liveness" in p["reason"] for p in spoofs), payments

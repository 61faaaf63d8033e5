"""POST /api/<view>/action over real loopback HTTP: delivery, contract, and the CSRF guards."""

from __future__ import annotations

import http.client
import json

from kiosk_ui.server import KioskServer


def post(server: KioskServer, body: bytes | str, content_type: str = "application/json",
         headers: dict[str, str] | None = None, view: str = "mirror") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request("POST", f"/api/{view}/action", body=data,
                     headers={"Content-Type": content_type, **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        is_json = resp.getheader("Content-Type", "").startswith("application/json")
        return resp.status, json.loads(raw) if is_json else {"text": raw.decode()}
    finally:
        conn.close()


def test_valid_action_reaches_the_subscriber(kiosk: KioskServer) -> None:
    got: list[dict] = []
    assert post(kiosk, '{"action": "not_me", "card": "c-1"}')[0] == 503  # nobody listening yet
    unsubscribe = kiosk.on_action("mirror", got.append)
    origin = {"Origin": f"http://127.0.0.1:{kiosk.port}", "Host": f"127.0.0.1:{kiosk.port}",
              "Sec-Fetch-Site": "same-origin"}
    assert post(kiosk, '{"action": "not_me", "card": "c-1"}', headers=origin) == (202, {"ok": True})
    assert post(kiosk, '{"action": "consent_agree", "version": "face-consent-v1"}', "application/json; charset=utf-8")[0] == 202
    assert got == [{"action": "not_me", "card": "c-1"}, {"action": "consent_agree", "version": "face-consent-v1"}]
    unsubscribe()
    assert post(kiosk, '{"action": "cancel"}')[0] == 503


def test_bad_actions_are_refused_and_never_delivered(kiosk: KioskServer) -> None:
    got: list[dict] = []
    kiosk.on_action("mirror", got.append)
    cases = [
        (post(kiosk, '{"action": "pay", "amount": 1}'), 400),                      # not a mirror action
        (post(kiosk, '{"action": "not_me"}'), 400),                                # missing its card
        (post(kiosk, '{"action": "cancel", "extra": 1}'), 400),                    # unknown field
        (post(kiosk, '{"action": "not_me", "card": 5}'), 400),                     # wrong type
        (post(kiosk, "not json"), 400),
        (post(kiosk, b"\xff\xfe"), 400),
        (post(kiosk, '{"action": "cancel"}', "text/plain"), 415),                  # a cross-site form's type
        (post(kiosk, '{"action": "cancel"}', "application/x-www-form-urlencoded"), 415),
        (post(kiosk, '{"action": "cancel"}', headers={"Origin": "http://evil.example"}), 403),
        (post(kiosk, '{"action": "cancel"}', headers={"Sec-Fetch-Site": "cross-site"}), 403),
        (post(kiosk, '{"action": "cancel", "pad": "' + "x" * 5000 + '"}'), 413),
        (post(kiosk, '{"action": "cancel"}', view="nowhere"), 404),
    ]
    assert [status for (status, _), _want in cases] == [want for _, want in cases]
    assert all("error" in body for (status, body), _ in cases if status != 404)
    assert got == []

"""KioskServer over real loopback HTTP: routes, the SSE stream, static files, lifecycle and errors."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest

import kiosk_ui.server as server_mod
from kiosk_ui.errors import KioskError
from kiosk_ui.server import KioskServer, validate_mirror_model
from tests.kiosk_ui.conftest import MEMBER, WELCOME

TIMEOUT_S = 5.0


def get(server: KioskServer, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def open_stream(server: KioskServer, view: str = "mirror") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT_S)
    conn.request("GET", f"/events/{view}", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    return conn, resp


def read_block(resp: http.client.HTTPResponse) -> list[str]:
    """One SSE block: the lines up to the next blank line (empty list at end of stream)."""
    lines: list[str] = []
    while True:
        raw = resp.readline()
        if not raw:
            return lines
        line = raw.decode().rstrip("\n")
        if line == "":
            if lines:
                return lines
            continue
        lines.append(line)


def read_model(resp: http.client.HTTPResponse) -> dict:
    """The next view model on the stream, skipping the retry hint and keepalive comments."""
    while True:
        block = read_block(resp)
        assert block, "stream ended before a model arrived"
        data = [line.removeprefix("data: ") for line in block if line.startswith("data: ")]
        if data:
            assert any(line.startswith("id: ") for line in block)
            return json.loads("\n".join(data))


def wait_until(predicate: Callable[[], bool], what: str, step: Callable[[], None] | None = None) -> None:
    """Poll a condition the server exposes no event for (e.g. that it noticed a client went away)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        if step:
            step()
        time.sleep(0.01)


def kiosk_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("kiosk-ui")]


# ---- state API, pages, static files -------------------------------------------------------------------


def test_state_starts_as_attract_and_follows_publish(kiosk: KioskServer) -> None:
    status, headers, body = get(kiosk, "/api/mirror/state")
    assert (status, json.loads(body)) == (200, {"state": "attract"})
    assert headers["Content-Type"].startswith("application/json")

    kiosk.publish("mirror", MEMBER)
    status, _, body = get(kiosk, "/api/mirror/state")
    assert json.loads(body.decode("utf-8")) == MEMBER
    assert kiosk.latest("mirror") == MEMBER


def test_pos_views_have_no_model_until_published(kiosk: KioskServer) -> None:
    assert json.loads(get(kiosk, "/api/pos-customer/state")[2]) is None
    kiosk.publish("pos-customer", {"state": "idle"})
    assert json.loads(get(kiosk, "/api/pos-customer/state")[2]) == {"state": "idle"}


def test_publish_copies_the_model(kiosk: KioskServer) -> None:
    model = dict(WELCOME)
    kiosk.publish("mirror", model)
    model["greeting"] = "changed after publish"
    assert kiosk.latest("mirror") == WELCOME


def test_mirror_page_and_static_files_are_served(kiosk: KioskServer) -> None:
    status, headers, body = get(kiosk, "/mirror")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    page = body.decode()
    for needed in ('id="greeting"', 'id="tier"', 'id="points"', 'id="coupons"', "/static/mirror.js"):
        assert needed in page
    assert "http://" not in page and "https://" not in page  # nothing external

    status, headers, body = get(kiosk, "/static/mirror.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in body.decode()
    status, headers, _ = get(kiosk, "/static/kiosk.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


@pytest.mark.parametrize(
    "path",
    [
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/static/",
        "/static/nothing.js",
        "/static/mirror.js%00.html",
    ],
)
def test_static_refuses_anything_outside_the_folder(kiosk: KioskServer, path: str) -> None:
    status, _, body = get(kiosk, path)
    assert status == 404
    assert b"KioskServer" not in body and b"root:" not in body


@pytest.mark.parametrize(
    "path", ["/", "/events/lobby", "/api/lobby/state", "/mirror/x", "/healthz/x"]
)
def test_unknown_paths_are_404(kiosk: KioskServer, path: str) -> None:
    assert get(kiosk, path)[0] == 404


def test_healthz_counts_connected_pages(kiosk: KioskServer) -> None:
    status, _, body = get(kiosk, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "clients": {"mirror": 0, "pos-cashier": 0, "pos-customer": 0}}
    conn, resp = open_stream(kiosk)
    try:
        read_model(resp)
        assert json.loads(get(kiosk, "/healthz")[2])["clients"]["mirror"] == 1
    finally:
        conn.close()


# ---- server-sent events -------------------------------------------------------------------------------


def test_stream_sends_current_model_on_connect_then_each_new_one(kiosk: KioskServer) -> None:
    kiosk.publish("mirror", WELCOME)
    conn, resp = open_stream(kiosk)
    try:
        first = read_block(resp)
        assert first == ["retry: 1000"]  # the browser reconnects by itself, after 1 s
        assert read_model(resp) == WELCOME

        kiosk.publish("mirror", MEMBER)
        assert read_model(resp) == MEMBER
        kiosk.publish("pos-cashier", {"state": "idle"})  # other views do not reach this stream
        kiosk.publish("mirror", {"state": "attract", "offline": True})
        assert read_model(resp) == {"state": "attract", "offline": True}
    finally:
        conn.close()


def test_stream_sends_keepalive_comments(kiosk: KioskServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_mod, "KEEPALIVE_S", 0.05)
    conn, resp = open_stream(kiosk)
    try:
        read_model(resp)
        assert read_block(resp) == [": keepalive"]
    finally:
        conn.close()


def test_disconnected_clients_are_dropped_quietly(
    kiosk: KioskServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN two pages on the stream WHEN one goes away THEN it is dropped, the other still gets models,
    and nothing is logged above DEBUG or written to stderr."""
    caplog.set_level(logging.DEBUG, logger="kiosk_ui")
    stay_conn, stay = open_stream(kiosk)
    gone_conn, gone = open_stream(kiosk)
    read_model(stay)
    read_model(gone)
    assert kiosk.clients("mirror") == 2

    gone.close()
    gone_conn.close()
    # The server notices on its next write to the closed socket: keep publishing until it has.
    n = iter(range(1_000_000))
    wait_until(
        lambda: kiosk.clients("mirror") == 1,
        "the server dropped the closed stream",
        step=lambda: kiosk.publish("mirror", {"state": "welcome", "greeting": f"#{next(n)}"}),
    )
    kiosk.publish("mirror", MEMBER)
    while (model := read_model(stay)) != MEMBER:
        assert model["state"] == "welcome"
    stay_conn.close()

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert capsys.readouterr().err == ""


# ---- lifecycle and errors -----------------------------------------------------------------------------


def test_stop_closes_open_streams_and_joins_threads() -> None:
    server = KioskServer(port=0).start()
    conn, resp = open_stream(server)
    assert read_model(resp) == {"state": "attract"}
    assert "kiosk-ui-http" in kiosk_threads()

    server.stop()

    assert kiosk_threads() == []
    assert read_block(resp) == []  # the stream ended
    conn.close()
    server.stop()  # twice is fine


def test_stop_cuts_a_client_that_never_sends_its_request() -> None:
    server = KioskServer(port=0).start()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S)
    try:
        wait_until(lambda: len(kiosk_threads()) == 2, "the idle connection has its thread")
        server.stop()
        assert kiosk_threads() == []
    finally:
        idle.close()


def test_port_zero_picks_a_free_port_and_url_follows() -> None:
    with KioskServer(port=0) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        port = server.port
    assert server.port == port  # still known after stop(): a new server can take the pages back
    assert KioskServer(host="0.0.0.0", port=81).url == "http://127.0.0.1:81"


def test_context_manager_stops_when_an_exception_passes() -> None:
    with pytest.raises(RuntimeError, match="boom"), KioskServer(port=0) as server:
        port = server.port
        raise RuntimeError("boom")
    assert kiosk_threads() == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S).close()


def test_busy_port_raises_kiosk_error_naming_the_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = KioskServer(port=port)
        with pytest.raises(KioskError, match=rf"port {port} is already in use.*set another kiosk port") as info:
            server.start()
        assert isinstance(info.value.__cause__, OSError)
    assert kiosk_threads() == []


def test_second_start_is_refused(kiosk: KioskServer) -> None:
    with pytest.raises(KioskError, match="already running"):
        kiosk.start()


def test_can_start_again_after_stop() -> None:
    server = KioskServer(port=0)
    with server:
        server.publish("mirror", WELCOME)
    with server:
        assert json.loads(get(server, "/api/mirror/state")[2]) == WELCOME
        conn, resp = open_stream(server)
        assert read_model(resp) == WELCOME
        conn.close()


# ---- the mirror contract ------------------------------------------------------------------------------


def test_contract_accepts_the_documented_models() -> None:
    for model in (
        {"state": "attract"},
        {"state": "attract", "offline": True, "device": "mirror-01"},
        {"state": "welcome", "greeting": "欢迎光临！"},
        WELCOME,
        MEMBER,
        {k: v for k, v in MEMBER.items() if k not in ("stars", "visit_cycle", "device")} | {"coupons": []},
    ):
        validate_mirror_model(model)


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        ([], "must be a dict"),
        ({}, "state must be one of"),
        ({"state": "goodbye"}, "state must be one of"),
        ({"state": "welcome"}, "needs \\['greeting'\\]"),
        ({"state": "welcome", "greeting": "hi", "tier": "璀璨卡"}, "not part of the 'welcome' state"),
        ({"state": "attract", "greeting": "hi"}, "not part of the 'attract' state"),
        (MEMBER | {"points": "7865"}, "points must be int"),
        (MEMBER | {"points": True}, "points must be int"),
        (MEMBER | {"stars": 6}, "stars must be 0..5"),
        (MEMBER | {"coupons": [{"title": "x"}]}, "coupons\\[0\\]"),
        (MEMBER | {"offline": "yes"}, "offline must be bool"),
        ({k: v for k, v in MEMBER.items() if k != "tier"}, "needs \\['tier'\\]"),
    ],
)
def test_contract_refuses_other_models(kiosk: KioskServer, model: object, complaint: str) -> None:
    with pytest.raises(KioskError, match=complaint):
        kiosk.publish("mirror", model)  # type: ignore[arg-type]
    assert kiosk.latest("mirror") == {"state": "attract"}


def test_publish_refuses_unknown_views_and_non_json(kiosk: KioskServer) -> None:
    with pytest.raises(KioskError, match="unknown kiosk view 'lobby'"):
        kiosk.publish("lobby", {"state": "attract"})
    # Every view now has a contract, so a non-JSON value is refused by its type check first.
    with pytest.raises(KioskError, match="amount must be str"):
        kiosk.publish("pos-cashier", {"state": "idle", "amount": object()})

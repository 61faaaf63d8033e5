"""The kiosk screens' local web server: static pages, plus the device's view models over Server-Sent Events.

The device app owns one ``KioskServer``, calls ``publish(view, model)`` whenever a screen should change, and
points Chromium (kiosk mode) at ``f"{server.url}/mirror"``. Pages hold no business logic: they render the
latest view model of their view, exactly as received. Everything is served from this process (no CDN, no
web fonts, no framework), so the screens work with the network down.

Usage (device side)::

    with KioskServer(port=8080) as ui:          # or ui.start() ... ui.stop()
        ui.publish("mirror", {"state": "attract"})
        ...                                       # launch chromium --kiosk {ui.url}/mirror
        ui.publish("mirror", {"state": "member", ...})

``publish`` is thread-safe and cheap (it serialises once; each connected page gets the newest model, so a
slow page skips intermediate models instead of queueing them: a view model is a full snapshot, never a diff).

View-model contract of the "mirror" view (``publish`` validates it; unknown keys are refused)
---------------------------------------------------------------------------------------------
::

    {"state": "attract"}
        Nobody in front of the mirror: the attract screen ("欢迎光临 · 请靠近魔镜").
    {"state": "welcome", "greeting": "欢迎光临！", "message": "..."}
        An unknown face: a neutral welcome, nothing personal. "message" is optional.
    {"state": "member",
     "greeting": "*建，下午好！",                 # already masked by the device; shown verbatim
     "tier": "璀璨卡",
     "points": 7865, "tier_keep_points": 10000,   # shown as "7865/10000 保级"
     "coupons": [{"title": "20元现金券", "hint": "打开小程序卡包出示给收银员"}, ...],   # may be []
     "stars": 4,                                  # optional, 0..5: shown as ★★★★☆
     "visit_cycle": "1.2 次/月"}                   # optional: the member's visit cycle, shown verbatim
    Optional in every state:
     "offline": true                              # a small "离线模式" banner
     "device": "mirror-01"                        # the device name, in small print
     "degraded": "呼叫按钮未连接 · 请检查USB线"      # a peripheral is missing: small print for staff

    Mirror extras (issue 7; all optional unless said):
    welcome: "greeting_en", "message_en"; "can_enroll": true shows the "开通刷脸" button;
     "content": {"id", "title", "body", "title_en"?, "body_en"?}   # campaign content for an anonymous
                                                                  # shopper (chosen on the device)
    member: "greeting_en"; "card": "c-17" (names this card in the actions below; required for the
     "not me" and "find my car" buttons to show); "can_enroll": true shows "刷脸授权" (manage or withdraw);
     "find_car": {"status": "searching" | "found" | "none" | "offline" | "error",
                  "cars": [{"plate": "沪A·***45", "bay": "B2-117"}], "message", "message_en"}
    {"state": "enroll", "step": "scan" | "consent" | "capture" | "done" | "failed" | "withdrawn",
     "greeting": "*建，您好", "greeting_en",       # masked member, from the consent step on
     "consent": {"version": "face-v1", "text": "...", "text_en": "..."},   # required in "consent"
     "enrolled": true,                            # the member already has a face template: offer withdrawal
     "prompt", "prompt_en",                       # what to do now ("请向左转头")
     "progress": 0..3,                            # good frames captured
     "liveness_done", "liveness_total",           # challenge steps done / asked
     "message", "message_en"}                     # the outcome or the reason of a failure
    {"state": "confirm", "card": "c-18",          # a match too weak for the gallery's size (device/open_set.py)
     "greeting": "您好，下午好！", "greeting_en",    # neutral: nothing of the member before the digits
     "message": "会员请输入手机尾号后四位…", "message_en",
     "tries_left": 1..3, "error", "error_en"}      # the keypad's last refusal ("手机尾号不符，请重试…")

Types: greeting, message, tier, title, hint, visit_cycle and device are strings; points, tier_keep_points
and stars are integers (not bools); offline is a bool; degraded is a string.

Touch actions (``POST /api/<view>/action``)
-------------------------------------------
The page sends a tap as a JSON object; the device subscribes with ``on_action(view, callback)`` and
gets it, checked, on the HTTP thread (the callback must only hand it over, e.g. to a queue). Mirror
actions (kiosk_ui.contract.MIRROR_ACTIONS, exact fields, unknown ones refused)::

    {"action": "find_car", "card": "c-17"}   {"action": "not_me", "card": "c-17"}
    {"action": "enroll_start"}   {"action": "consent_agree", "version": "face-v1"}
    {"action": "consent_decline"}   {"action": "withdraw"}   {"action": "retry"}   {"action": "cancel"}
    {"action": "confirm_phone", "card": "c-18", "digits": "1234"}   {"action": "confirm_skip", "card": "c-18"}

CSRF: the body must be ``Content-Type: application/json`` (a cross-site form cannot send that without a
CORS preflight, which this server never grants), and an ``Origin`` or ``Sec-Fetch-Site`` header, when
present, must say same origin. Answers: 202 delivered · 400 not a valid action · 403 cross-origin ·
411/413 missing or oversized body (ACTION_MAX_BYTES) · 415 wrong content type · 503 nobody subscribed. Before the first publish the mirror shows
``{"state": "attract"}``. The "pos-cashier" and "pos-customer" views and their actions follow
kiosk_ui.pos_contract (checked the same way); they have no model until the first publish.

Routes
------
``GET /mirror``              the mirror page (kiosk_ui/static/mirror.html)
``GET /pos/cashier``         the π-POS cashier page; ``GET /pos/customer`` the customer-facing page
``GET /static/<path>``       files under kiosk_ui/static (nothing outside it)
``GET /events/<view>``       SSE stream: ``retry: 1000``, the current model at once, then every new one
                             (``id: <n>`` + ``data: <json>``), and a ``: keepalive`` comment every KEEPALIVE_S
``GET /api/<view>/state``    the latest model as JSON (``null`` when that view has none yet)
``POST /api/<view>/action`` a touch action (see above)
``GET /healthz``             ``{"status": "ok", "clients": {view: connected pages}}``
Anything else is 404.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import mimetypes
import re
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from kiosk_ui.contract import validate_action, validate_mirror_model
from kiosk_ui.errors import KioskError
from kiosk_ui.hub import CLOSED, VIEWS, ActionCallback, Hub
from kiosk_ui.pos_contract import POS_VIEWS, validate_pos_action, validate_pos_model

log = logging.getLogger(__name__)

# Timing constants: module level so tests can shrink them; read at use time, not import time.
KEEPALIVE_S = 15.0  # an SSE comment this often keeps proxies/NAT quiet and reveals pages that went away
RETRY_MS = 1000  # told to EventSource: how soon a page reconnects after the stream drops
SOCKET_TIMEOUT_S = 30.0  # a client that sends nothing, or stops reading its stream, is dropped after this
POLL_S = 0.2  # serve_forever's shutdown poll interval: how long stop() may wait for the accept loop
JOIN_S = 5.0  # how long stop() waits for each connection thread before logging that it is stuck
ACTION_MAX_BYTES = 4096  # a touch action is a few fields; anything bigger is not one

STATIC_DIR: Final = Path(__file__).resolve().with_name("static")
PAGES: Final = {"/mirror": "mirror.html", "/pos/cashier": "pos_cashier.html", "/pos/customer": "pos_customer.html"}

_EVENTS_RE = re.compile(r"/events/([a-z-]+)")
_STATE_RE = re.compile(r"/api/([a-z-]+)/state")
_ACTION_RE = re.compile(r"/api/([a-z-]+)/action")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
# The pages may load nothing but what this server serves.
_CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'none'"

# ---------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, tracked with its socket so that stop() can cut it off and join it."""

    daemon_threads = False
    block_on_close = False  # we join our own threads in stop(), with a timeout and a log line

    def __init__(self, address: tuple[str, int], hub: Hub, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.hub = hub
        self.stopping = False
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._numbers = itertools.count(1)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"kiosk-ui-conn-{next(self._numbers)}",
            daemon=False,
        )
        # Registered from the accept loop, before the thread runs: once that loop has stopped, this
        # table holds every connection that stop() has to cut off.
        with self._lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._connections.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        err = sys.exc_info()[1]
        if isinstance(err, ConnectionError | TimeoutError) or (self.stopping and isinstance(err, OSError)):
            # A page that went away (reload, screen off, stop()) is routine, not an error.
            log.debug("kiosk_ui: client %s went away: %r", client_address, err)
        else:
            log.exception("kiosk_ui: error while serving %s", client_address)

    def close_connections(self) -> list[threading.Thread]:
        """Cut every open connection (unblocking reads and writes) and return the threads to join."""
        with self._lock:
            connections = list(self._connections.items())
        for _thread, sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its own thread
        return [thread for thread, _sock in connections]


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads to wait for
    server_version = "JoyEdgeKiosk/1"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = SOCKET_TIMEOUT_S
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kiosk_ui: %s %s", self.address_string(), format % args)

    # -- routing -------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send_json({"status": "ok", "clients": self.server.hub.clients()})
        elif path in PAGES:
            self._send_file(STATIC_DIR / PAGES[path])
        elif path.startswith("/static/"):
            target = _static_file(path.removeprefix("/static/"))
            if target is None:
                self._not_found()
            else:
                self._send_file(target)
        elif (m := _EVENTS_RE.fullmatch(path)) and m.group(1) in VIEWS:
            self._stream(m.group(1))
        elif (m := _STATE_RE.fullmatch(path)) and m.group(1) in VIEWS:
            latest = self.server.hub.latest(m.group(1))
            self._send_bytes(HTTPStatus.OK, (latest[1] if latest else "null").encode(), _CONTENT_TYPES[".json"])
        else:
            self._not_found()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        m = _ACTION_RE.fullmatch(path)
        if not m or m.group(1) not in VIEWS:
            self._not_found()
            return
        view = m.group(1)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._send_error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "actions must be sent as application/json")
            return
        if not self._same_origin():
            self._send_error(HTTPStatus.FORBIDDEN, "actions are accepted from this server's own pages only")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send_error(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return
        if not 0 < length <= ACTION_MAX_BYTES:
            self._send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"an action is 1..{ACTION_MAX_BYTES} bytes")
            return
        try:
            check = validate_pos_action if view in POS_VIEWS else validate_action  # π-POS: kiosk_ui.pos_contract
            action = check(view, json.loads(self.rfile.read(length)))
        except (ValueError, KioskError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            self._send_error(HTTPStatus.BAD_REQUEST, f"not a valid {view} action: {err}")
            return
        callbacks = self.server.hub.action_callbacks(view)
        if not callbacks:
            self._send_error(HTTPStatus.SERVICE_UNAVAILABLE, f"the device is not listening to {view} actions yet")
            return
        for callback in callbacks:
            try:
                callback(action)
            except Exception:  # a device bug must not take the HTTP thread down; it is logged in full
                log.exception("kiosk_ui: %s action callback failed on %r", view, action)
                self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "the device could not take the action")
                return
        self._send_bytes(HTTPStatus.ACCEPTED, b'{"ok":true}', _CONTENT_TYPES[".json"])

    def _same_origin(self) -> bool:
        # Browsers always send Sec-Fetch-Site (Chromium) and Origin on a POST; tools like curl send
        # neither, which is fine: they are not a CSRF vector.
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return False
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        return origin is None or (host is not None and origin == f"http://{host}")

    # -- responses -----------------------------------------------------------------------------------------

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        body = json.dumps({"error": message}, ensure_ascii=False).encode()
        self._send_bytes(status, body, _CONTENT_TYPES[".json"])

    def _send_bytes(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")  # a software update must show on the next load
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, value: Any) -> None:
        body = json.dumps(value, ensure_ascii=False).encode()
        self._send_bytes(HTTPStatus.OK, body, _CONTENT_TYPES[".json"])

    def _send_file(self, path: Path) -> None:
        content_type = _CONTENT_TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        self._send_bytes(HTTPStatus.OK, path.read_bytes(), content_type or "application/octet-stream")

    def _not_found(self) -> None:
        self._send_bytes(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _stream(self, view: str) -> None:
        """Server-Sent Events: the current model at once, then each newer one, keepalives in between."""
        hub = self.server.hub
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        hub.client_joined(view, +1)
        try:
            self._write(f"retry: {RETRY_MS}\n\n")
            seen: int | None = None
            while True:
                item = hub.wait_newer(view, seen, KEEPALIVE_S)
                if item is CLOSED:
                    return
                if item is None:
                    self._write(": keepalive\n\n")
                    continue
                assert isinstance(item, tuple)
                seen, payload = item
                # json.dumps never emits a raw newline, so one data line carries the whole model.
                self._write(f"id: {seen}\ndata: {payload}\n\n")
        except (ConnectionError, TimeoutError) as err:
            log.debug("kiosk_ui: %s stream client %s went away: %r", view, self.address_string(), err)
        except OSError as err:
            if not self.server.stopping:
                raise
            log.debug("kiosk_ui: %s stream to %s cut by stop(): %r", view, self.address_string(), err)
        finally:
            hub.client_joined(view, -1)

    def _write(self, text: str) -> None:
        self.wfile.write(text.encode())
        self.wfile.flush()


def _static_file(relative: str) -> Path | None:
    """The file under STATIC_DIR that ``relative`` (URL-encoded) names, or None if it names nothing there."""
    relative = unquote(relative)
    if not relative or "\x00" in relative:
        return None
    target = (STATIC_DIR / relative).resolve()
    # resolve() folds "..", "//" and symlinks; whatever lands outside the folder is refused.
    if not target.is_relative_to(STATIC_DIR) or not target.is_file():
        return None
    return target


# ---------------------------------------------------------------------------------------------------------
# The public server
# ---------------------------------------------------------------------------------------------------------


class KioskServer:
    """The local web server of the kiosk screens. ``port=0`` picks a free port (see ``.port`` after start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._hub = Hub()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> KioskServer:
        """Bind and start serving in a background thread. Raises KioskError if the port cannot be bound."""
        with self._lifecycle:
            if self._httpd is not None:
                raise KioskError(f"kiosk server on {self.url} is already running: call stop() first")
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            where = f"{self.host}:{self._requested_port}"
            try:
                httpd = _HTTPServer((self.host, self._requested_port), self._hub, family)
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise KioskError(
                        f"kiosk UI cannot listen on {where}: port {self._requested_port} is already in use "
                        f"(another joyedge process or kiosk server?). Stop whatever holds it "
                        f"(`ss -ltnp 'sport = :{self._requested_port}'` shows it) or set another kiosk port"
                    ) from err
                raise KioskError(
                    f"kiosk UI cannot listen on {where}: {err.strerror or err}. "
                    "Check the kiosk host and port settings (ports below 1024 need privileges)"
                ) from err
            self._hub.set_closed(False)
            self._httpd = httpd
            self._bound_port = httpd.server_address[1]
            self._serve_thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": POLL_S}, name="kiosk-ui-http", daemon=False
            )
            self._serve_thread.start()
            log.info("kiosk_ui: serving %s/mirror", self.url)
            return self

    def stop(self) -> None:
        """Stop accepting, close every open event stream and join every thread. Safe to call twice."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._serve_thread
            if httpd is None or thread is None:
                return
            httpd.stopping = True
            httpd.shutdown()  # the accept loop ends; no connection registers after this
            thread.join()
            self._hub.set_closed(True)  # event streams waiting for a model return
            for conn in httpd.close_connections():  # streams blocked on a socket are cut off
                conn.join(JOIN_S)
                if conn.is_alive():
                    log.warning("kiosk_ui: connection thread %s did not stop within %.0f s", conn.name, JOIN_S)
            httpd.server_close()
            self._httpd = self._serve_thread = None
            log.info("kiosk_ui: stopped")

    def __enter__(self) -> KioskServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- properties ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked); after stop() the last one; before start() the
        requested one."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def url(self) -> str:
        """Base URL for a browser on this machine, e.g. ``http://127.0.0.1:8080`` (pages at ``/mirror``)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # -- view models ---------------------------------------------------------------------------------------

    def publish(self, view: str, model: dict[str, Any]) -> None:
        """Make ``model`` the latest of ``view`` and push it to every page showing that view. Thread-safe.

        The model is validated (the mirror contract) and serialised here, in the caller's thread, so a bad
        model fails where it was made; later changes to the caller's dict do not reach the screen.
        """
        if view not in VIEWS:
            raise KioskError(f"unknown kiosk view {view!r}: expected one of {', '.join(VIEWS)}")
        if view == "mirror":
            validate_mirror_model(model)
        elif view in POS_VIEWS:
            validate_pos_model(view, model)
        elif not isinstance(model, dict):
            raise KioskError(f"{view} view model must be a dict, got {type(model).__name__}")
        try:
            payload = json.dumps(model, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise KioskError(f"{view} view model is not plain JSON data: {err}") from err
        self._hub.publish(view, payload)

    def latest(self, view: str) -> dict[str, Any] | None:
        """The latest model of ``view`` (a fresh copy), or None if it has none yet."""
        if view not in VIEWS:
            raise KioskError(f"unknown kiosk view {view!r}: expected one of {', '.join(VIEWS)}")
        current = self._hub.latest(view)
        return json.loads(current[1]) if current else None

    def clients(self, view: str) -> int:
        """How many event streams of ``view`` are open right now (pages showing it)."""
        return self._hub.clients()[view]

    def on_action(self, view: str, callback: ActionCallback) -> Callable[[], None]:
        """Call ``callback(action)`` for every valid touch action a page of ``view`` posts; returns an
        unsubscribe function. It runs on an HTTP thread: hand the action over (a queue), do not work in it."""
        if view not in VIEWS:
            raise KioskError(f"unknown kiosk view {view!r}: expected one of {', '.join(VIEWS)}")
        return self._hub.subscribe(view, callback)

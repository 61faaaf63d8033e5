"""Whether this device finished its first boot, and what the screens and `joyedge status` say when not.

`joyedge firstboot` writes `<data_dir>/firstboot-status.json` at every step (running, retrying, failed,
done) with a reason an installer can act on and whether a retry can help (`retryable`: the network; not:
a bad or used claim token, an invalid file). When the device config is missing the systemd units run
`joyedge firstboot-notice` instead of the app (hardware/systemd/joyedge-notice.service): a small HTTP
server on the kiosk port that answers every screen with 设备未完成初始化：<reason>（请联系安装人员） and
reloads itself, so the kiosk browser shows the real app once the device is provisioned. With
`advertise=True` it also advertises the device on the LAN as not provisioned, with the reason
(device/notice_advertise.py), so `joyprov discover` finds it.
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from device.notice_advertise import NoticeAdvertiser, NoticeIdentity, notice_identity

log = logging.getLogger(__name__)

STATUS_FILE = "firstboot-status.json"
NOTICE_PAGE = Path(__file__).resolve().parents[1] / "kiosk_ui" / "static" / "not_provisioned.html"
NO_STATUS_REASON = "未找到首次启动记录：首次启动配置 joyedge-firstboot.toml 未写入或未运行"


@dataclass
class FirstbootStatus:
    """What `joyedge firstboot` last did."""

    state: str  # running | retrying | failed | done
    reason: str = ""  # for the installer (Chinese or English as the error said it)
    retryable: bool = False  # a later attempt (next boot) can succeed without anyone changing anything
    attempts: int = 0
    updated_at_ms: int = 0
    device_id: str = ""  # the id firstboot was told to use (--device-id); "" when it derives one


def status_path(data_dir: Path) -> Path:
    """`<data_dir>/firstboot-status.json`."""
    return Path(data_dir) / STATUS_FILE


def write_status(data_dir: Path, status: FirstbootStatus) -> None:
    """Write the status atomically (tmp + fsync + rename); a failure to write is logged, never raised."""
    status.updated_at_ms = int(time.time() * 1000)
    path = status_path(data_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(status), f, ensure_ascii=False, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # the app and admin (user joyedge) read it; firstboot runs as root
        os.replace(tmp, path)
    except OSError as err:
        log.error("firstboot: cannot write %s: %s", path, err)


def read_status(data_dir: Path) -> FirstbootStatus | None:
    """The last status, or None when firstboot never ran here (or the file is unreadable)."""
    try:
        raw = json.loads(status_path(data_dir).read_text(encoding="utf-8"))
        return FirstbootStatus(**{k: raw[k] for k in FirstbootStatus.__dataclass_fields__ if k in raw})
    except (OSError, ValueError, TypeError):
        return None


def provisioning(data_dir: Path, config_path: Path) -> dict[str, Any]:
    """The device's provisioning state for `joyedge status` and the notice screen."""
    st = read_status(data_dir)
    provisioned = config_path.is_file()
    if provisioned:
        reason = ""
    elif st is None:
        reason = NO_STATUS_REASON
    elif st.state == "failed":
        reason = st.reason
    else:
        reason = f"首次启动进行中（{st.state}）：{st.reason}" if st.reason else f"首次启动进行中（{st.state}）"
    return {"provisioned": provisioned, "config": str(config_path), "reason": reason,
            "firstboot": asdict(st) if st else None,
            "banner": "" if provisioned else banner(reason)}


def banner(reason: str) -> str:
    """The line every kiosk screen shows on a device that is not provisioned."""
    return f"设备未完成初始化：{reason}（请联系安装人员）"


class NoticeServer:
    """Serves the not-provisioned banner on every path (the kiosk pages' URLs included); `/healthz` and
    `/api/provisioning` answer JSON. The status is read on every request, so a retry's outcome shows.

    `advertise=True` also registers `<id>._joyedge._tcp.local.` with state not-provisioned, the reason
    and this port (`interfaces` as for device/advertise.py; `identity` defaults to `notice_identity()`),
    withdrawn by `stop()`.
    """

    def __init__(self, data_dir: Path, config_path: Path, host: str = "127.0.0.1", port: int = 8080, *,
                 advertise: bool = False, interfaces: list[str] | None = None,
                 identity: NoticeIdentity | None = None, version: str | None = None) -> None:
        self.data_dir, self.config_path = Path(data_dir), Path(config_path)
        self.advertise, self.interfaces, self.identity, self.version = advertise, interfaces, identity, version
        self.advertiser: NoticeAdvertiser | None = None
        notice = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("notice: " + format, *args)

            def do_GET(self) -> None:
                state = provisioning(notice.data_dir, notice.config_path)
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/api/provisioning"):
                    body, ctype = json.dumps(state, ensure_ascii=False).encode(), "application/json; charset=utf-8"
                else:
                    page = NOTICE_PAGE.read_text(encoding="utf-8")
                    body = page.replace("{{banner}}", html.escape(state["banner"] or "设备已完成初始化")).encode()
                    ctype = "text/html; charset=utf-8"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._httpd.server_address[1])

    def start(self) -> NoticeServer:
        """Serve on a daemon thread (and advertise, when asked)."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="firstboot-notice", daemon=True)
        self._thread.start()
        self._start_advertising()
        return self

    def serve_forever(self) -> None:
        """Serve on the caller's thread until interrupted (advertising first, when asked)."""
        self._start_advertising()
        self._httpd.serve_forever()

    def _start_advertising(self) -> None:
        if not self.advertise or self.advertiser is not None:
            return
        if self.version is None:
            from device.cli import VERSION

            self.version = VERSION
        self.identity = self.identity or notice_identity(data_dir=self.data_dir)
        self.advertiser = NoticeAdvertiser(self.data_dir, self.config_path, port=self.port, identity=self.identity,
                                           version=self.version, interfaces=self.interfaces).start()

    def stop(self) -> None:
        """Withdraw the advertisement, stop serving and close the socket."""
        adv, self.advertiser = self.advertiser, None
        if adv is not None:
            adv.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> NoticeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

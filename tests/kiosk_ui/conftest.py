"""Fixtures for the kiosk screens: a real KioskServer on a free loopback port, and view models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kiosk_ui.server as server_mod
from kiosk_ui.server import KioskServer

MEMBER = {
    "state": "member",
    "greeting": "*建，下午好！",
    "tier": "璀璨卡",
    "points": 7865,
    "tier_keep_points": 10000,
    "coupons": [
        {"title": "20元现金券", "hint": "打开小程序卡包出示给收银员"},
        {"title": "满300减50 · 女装", "hint": "本周日前有效，结账时出示"},
    ],
    "stars": 4,
    "visit_cycle": "1.2 次/月",
    "device": "mirror-01",
}
WELCOME = {"state": "welcome", "greeting": "欢迎光临！", "message": "注册会员，刷脸即享积分与专属优惠"}


@pytest.fixture(autouse=True)
def fast_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() waits up to POLL_S for the accept loop to notice; shrink it so tests do not add it up."""
    monkeypatch.setattr(server_mod, "POLL_S", 0.01)


@pytest.fixture
def kiosk() -> Iterator[KioskServer]:
    """A started KioskServer on 127.0.0.1 and a free port; stopped (and its threads joined) afterwards."""
    with KioskServer(port=0) as server:
        yield server

"""Hot-plug: a peripheral unplugged → device degraded, the others keep working → recovery on replug."""

from __future__ import annotations

import socket

import pytest

from device import peripherals as per
from device.config import load_config
from device.peripherals import Health, PeripheralSupervisor, build_peripherals, sd_notify
from device.selftest import probe
from drivers.printer import sample_receipt


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(per, "POLL_S", 0.02)
    monkeypatch.setattr(per, "BACKOFF_INITIAL_S", 0.01)
    monkeypatch.setattr(per, "BACKOFF_MAX_S", 0.04)


def test_unplug_degrades_and_replug_recovers():
    devices = build_peripherals(load_config(profile="pos-flagship"), fake=True)
    changes: list[tuple[str, str]] = []
    with PeripheralSupervisor(devices, probe, on_change=lambda n, h: changes.append((n, h.status))) as sup:
        for name in devices:
            assert sup.wait_for(name, "ok", 10)
        assert sup.device_state == "ok"
        devices["scanner"].device.unplug()
        assert sup.wait_for("scanner", "missing", 10)
        assert sup.device_state == "degraded"
        summary = sup.summary()
        assert summary["state"] == "degraded" and "unplugged" in summary["peripherals"]["scanner"]["detail"]
        # the rest of the device keeps working meanwhile: a receipt still prints
        printer = devices["printer"].device
        with printer:
            printer.print_receipt(sample_receipt())
        assert sup.states["printer"].status == "ok"
        devices["scanner"].device.replug()
        assert sup.wait_for("scanner", "ok", 10)
        assert sup.device_state == "ok"
    assert ("scanner", "missing") in changes and changes[-1] == ("scanner", "ok")


def test_missing_peripheral_is_retried_with_backoff_not_busy_looped():
    devices = build_peripherals(load_config(profile="mirror"), fake=True, unplugged=["call_button"])
    sup = PeripheralSupervisor(devices, probe)
    assert sup.check("call_button").status == "missing"
    first = sup._delay["call_button"]
    sup.check("call_button")
    assert sup._delay["call_button"] == min(first * 2, per.BACKOFF_MAX_S)
    devices["call_button"].device.device.replug()
    assert sup.check("call_button").status == "ok"
    assert sup._delay["call_button"] == per.BACKOFF_INITIAL_S


def test_a_probe_that_crashes_does_not_stop_supervision():
    devices = build_peripherals(load_config(profile="mirror"), fake=True)
    calls = {"n": 0}

    def flaky(p):
        if p.name == "camera":
            calls["n"] += 1
            raise RuntimeError("bug in a probe")
        return probe(p)

    with PeripheralSupervisor(devices, flaky) as sup:
        assert sup.wait_for("call_button", "ok", 10)
    assert calls["n"] >= 1 and sup.states["call_button"] == Health("ok", sup.states["call_button"].detail)


def test_sd_notify_reaches_a_notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert sd_notify("WATCHDOG=1")
        assert s.recv(64) == b"WATCHDOG=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sd_notify("WATCHDOG=1") is False

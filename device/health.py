"""Peripheral health while `joyedge run` serves: a PeripheralSupervisor over what the app does not hold.

The app owns its cameras (it reads them every frame) and the π-POS holds its scanner (grabbed
exclusively) and customer display open; probing those by opening them again would fail or steal the
device. So they are either left out (cameras: the camera driver reconnects by itself) or checked
by presence only (`presence_probe`: the fake twin's plug state, else the device node exists). The
printer and cash drawer are probed through the app's own driver objects (opens nest under the
printer's lock, so a probe never lands inside a receipt).

`degraded_text` turns the supervisor's states into the short line the cashier screen shows, with
what to check ("打印机未连接 · 请检查USB线").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from device.peripherals import Health, Peripheral, PeripheralSupervisor
from device.selftest import probe as full_probe

LABELS = {"printer": "打印机", "scanner": "扫码枪", "customer_display": "客显", "cash_drawer": "钱箱",
          "call_button": "呼叫按钮", "camera": "摄像头", "depth_camera": "深度相机"}


def _node(source: str) -> str:
    """The device path in a peripheral URI ("serial:/dev/x?baud=9600" → "/dev/x"), or "" if none."""
    path = source.split(":", 1)[1] if ":" in source and not source.startswith("/") else source
    return path.split("?", 1)[0] if path.startswith("/") else ""


def presence_probe(p: Peripheral) -> Health:
    """Present or not, without opening a device the app holds: the twin's plug state, else the node exists."""
    device = p.device
    twin = getattr(device, "device", device)  # Buttons wrap an event device
    plugged = getattr(twin, "plugged", None)
    if plugged is not None:
        return Health("ok", f"present at {p.source}") if plugged else Health("missing", f"{p.source} unplugged")
    node = _node(p.source)
    if not node:
        return Health("ok", f"held by the app ({p.source}); presence not checkable")
    if os.path.exists(node):
        return Health("ok", f"present at {node}")
    return Health("missing", f"{node} not found: is it plugged in?")


def hint(name: str, source: str) -> str:
    """What a cashier should check for a missing ``name`` connected by ``source``."""
    if "rfcomm" in source or source.startswith("bt:"):
        return "请检查蓝牙连接"
    if source.startswith(("tcp:", "tcp://")):
        return "请检查网线和电源"
    if name == "cash_drawer":
        return "请检查打印机和钱箱线"
    if name == "printer":
        return "请检查USB线和电源"
    return "请检查USB线"


def degraded_text(states: dict[str, Health], sources: dict[str, str]) -> str:
    """One line for the screens: "打印机未连接 · 请检查USB线；…", or "" when every peripheral is ok."""
    parts = []
    for name, health in states.items():
        if health.status == "ok":
            continue
        label = LABELS.get(name, name)
        verb = "未连接" if health.status == "missing" else "异常"
        parts.append(f"{label}{verb} · {hint(name, sources.get(name, ''))}")
    return "；".join(parts)


def start_supervisor(peripherals: dict[str, Peripheral], *, held: Iterable[str] = (),
                     on_degraded: Callable[[str, list[str], str], None]) -> PeripheralSupervisor:
    """Supervise ``peripherals`` (the ``held`` ones by presence only) and start it.

    ``on_degraded(text, missing, changed)`` runs on the supervisor thread at every state change with the
    banner text, the names not ok, and the name that changed; it must only hand the values over.
    """
    held = set(held)
    sources = {n: p.source for n, p in peripherals.items()}

    def probe(p: Peripheral) -> Health:
        return presence_probe(p) if p.name in held else full_probe(p)

    sup: PeripheralSupervisor

    def changed(name: str, _health: Health) -> None:
        states = dict(sup.states)
        on_degraded(degraded_text(states, sources), [n for n, h in states.items() if h.status != "ok"], name)

    sup = PeripheralSupervisor(peripherals, probe, on_change=changed)
    return sup.start()


def mirror_peripherals(built: dict[str, Peripheral]) -> dict[str, Any]:
    """The mirror's supervised set: everything but the cameras the app reads itself."""
    return {n: p for n, p in built.items() if n not in ("camera", "depth_camera")}

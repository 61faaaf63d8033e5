"""The device's peripherals: built from its config (real drivers or their fake twins) and supervised.

`build_peripherals` turns `[camera]`, `[depth_camera]` and `[peripherals.*]` into driver objects
without opening anything. `PeripheralSupervisor` is the one coordinator for their health (Home
Assistant style): it alone probes, backs off on a missing device, keeps the last state, and says
when the device is degraded or recovered; everything else only reads `states`/`summary()`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from device.config import DeviceConfig
from device.errors import DeviceError
from sync.notify import sd_notify as sd_notify  # re-exported for callers that know it from here

_LOG = logging.getLogger(__name__)

POLL_S = 10.0  # a healthy peripheral is looked at this often
BACKOFF_INITIAL_S = 1.0  # a missing one first after this, doubling …
BACKOFF_MAX_S = 60.0  # … up to this, so a pulled printer does not cost a busy loop


@dataclass
class Peripheral:
    """One configured peripheral: its config name, the backend that drives it, the driver object."""

    name: str
    backend: str
    device: Any
    source: str = ""


def _fake(name: str, cfg: DeviceConfig) -> Peripheral:
    from drivers.camera.depth import FakeDepthCamera
    from drivers.camera.fake import FakeCamera, pattern_frame
    from drivers.display.fake import FakeDisplay
    from drivers.inputs.evdev_source import FakeEventDevice
    from drivers.printer.fake import FakePrinter
    from drivers.scanner.fake import FakeScanner

    p = cfg.peripherals
    if name == "camera":
        return Peripheral(name, "fake", FakeCamera(itertools.repeat(pattern_frame())), cfg.camera.uri)
    if name == "depth_camera":
        return Peripheral(name, "fake", FakeDepthCamera(), cfg.depth_camera.uri)  # type: ignore[union-attr]
    if name == "printer":
        return Peripheral(name, "fake", FakePrinter(paper_mm=p.printer.paper_mm), p.printer.uri)  # type: ignore[union-attr]
    if name == "scanner":
        return Peripheral(name, "fake", FakeScanner(p.scanner.source), p.scanner.source)  # type: ignore[union-attr]
    if name == "customer_display":
        d = p.customer_display
        return Peripheral(name, "fake", FakeDisplay(d.uri, d.encoding), d.uri)  # type: ignore[union-attr]
    if name == "call_button":
        from drivers.inputs.buttons import Buttons

        src = p.call_button.source  # type: ignore[union-attr]
        return Peripheral(name, "fake", Buttons(FakeEventDevice(src), _keys(cfg)), src)
    raise DeviceError(f"no fake for peripheral {name!r}")


def _keys(cfg: DeviceConfig) -> dict[int, str]:
    button = cfg.peripherals.call_button
    return {code: "call_staff" for code in (button.keys if button else [])}


def _real(name: str, cfg: DeviceConfig) -> Peripheral:
    p = cfg.peripherals
    if name == "camera":
        from drivers.camera import open_camera

        c = cfg.camera
        # The self-test wants a yes or no now, not a camera that waits for its cable forever.
        cam = open_camera(c.uri, width=c.width, height=c.height, fps=c.fps, pace=False, supervise=False)
        return Peripheral(name, c.uri.split(":", 1)[0], cam, c.uri)
    if name == "depth_camera":
        from drivers.camera.depth import open_depth_camera

        d = cfg.depth_camera
        cam = open_depth_camera(d.uri, width=d.width, height=d.height)  # type: ignore[union-attr]
        return Peripheral(name, d.uri.split(":", 1)[0], cam, d.uri)  # type: ignore[union-attr]
    if name == "printer":
        from drivers.printer import open_printer

        printer = open_printer(p.printer.uri, paper_mm=p.printer.paper_mm)  # type: ignore[union-attr]
        return Peripheral(name, printer.backend, printer, p.printer.uri)  # type: ignore[union-attr]
    if name == "scanner":
        from drivers.scanner import open_scanner

        s = p.scanner
        scanner = open_scanner(s.kind, s.source, keymap=s.keymap, terminator=s.terminator,  # type: ignore[union-attr]
                               grab=s.grab, baudrate=s.baudrate, camera=None if s.kind != "camera" else  # type: ignore[union-attr]
                               _real("camera", cfg).device)
        return Peripheral(name, s.kind, scanner, s.source)  # type: ignore[union-attr]
    if name == "customer_display":
        from drivers.display.serial import SerialDisplay

        d = p.customer_display
        return Peripheral(name, "serial", SerialDisplay(d.uri, d.encoding), d.uri)  # type: ignore[union-attr]
    if name == "call_button":
        from drivers.inputs.buttons import Buttons
        from drivers.inputs.evdev_source import EvdevDevice

        b = p.call_button
        return Peripheral(name, "evdev", Buttons(EvdevDevice(b.source, grab=b.grab), _keys(cfg)), b.source)  # type: ignore[union-attr]
    raise DeviceError(f"unknown peripheral {name!r}")


class Unavailable:
    """Stands in for a driver that could not even be built (no backend, bad URI): opening it says why."""

    def __init__(self, err: Exception) -> None:
        self.error = err

    def open(self) -> None:
        """Raise the reason."""
        raise self.error

    def close(self) -> None:
        """Nothing to release."""


def _build_real(name: str, cfg: DeviceConfig) -> Peripheral:
    from drivers.errors import DriverError

    try:
        return _real(name, cfg)
    except DriverError as err:
        source = getattr(getattr(cfg.peripherals, name, None) or getattr(cfg, name, None), "uri", "")
        return Peripheral(name, "unavailable", Unavailable(err), source)


def configured(cfg: DeviceConfig) -> list[str]:
    """Names of the peripherals this device has, in the order a technician checks them."""
    names = ["camera"] + (["depth_camera"] if cfg.depth_camera else [])
    return names + [n for n in ("printer", "scanner", "customer_display", "cash_drawer", "call_button")
                    if getattr(cfg.peripherals, n) is not None]


def build_peripherals(cfg: DeviceConfig, *, fake: bool = False,
                      unplugged: Iterable[str] = ()) -> dict[str, Peripheral]:
    """Driver objects for every configured peripheral (not opened). With `fake`, their twins;
    `unplugged` names fakes to start disconnected (a technician's rehearsal of a missing device)."""
    from drivers.cash_drawer import CashDrawer

    names = configured(cfg)
    unplugged = set(unplugged)
    if unplugged and not fake:
        raise DeviceError("--unplug works only with --fake-hardware (real devices are unplugged by hand)")
    unknown = unplugged - set(names)
    if unknown:
        raise DeviceError(f"cannot unplug {', '.join(sorted(unknown))}: this device has {', '.join(names)}")
    out: dict[str, Peripheral] = {}
    for name in names:
        if name == "cash_drawer":
            continue  # built last, on the printer
        out[name] = (_fake if fake else _build_real)(name, cfg)
    if "cash_drawer" in names:
        printer = out["printer"]
        drawer = CashDrawer(printer.device, pin=cfg.peripherals.cash_drawer.pin)  # type: ignore[union-attr]
        out["cash_drawer"] = Peripheral("cash_drawer", "printer-kick", drawer, printer.source)
    for name in unplugged:
        device = out[name].device
        target = device.printer if name == "cash_drawer" else getattr(device, "device", device)
        target.unplug()
    return out


@dataclass(frozen=True)
class Health:
    """The last probe of one peripheral."""

    status: str  # ok | degraded | missing
    detail: str


Probe = Callable[[Peripheral], Health]


class PeripheralSupervisor:
    """Probes every peripheral on its own thread; unplugged → missing (device degraded) → recovered."""

    def __init__(self, peripherals: dict[str, Peripheral], probe: Probe,
                 on_change: Callable[[str, Health], None] | None = None) -> None:
        self.peripherals = peripherals
        self.probe = probe
        self.on_change = on_change
        self.states: dict[str, Health] = {}
        self._due: dict[str, float] = dict.fromkeys(peripherals, 0.0)
        self._delay: dict[str, float] = dict.fromkeys(peripherals, BACKOFF_INITIAL_S)
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def check(self, name: str) -> Health:
        """Probe one peripheral now and record the result (and the next time to look)."""
        health = self.probe(self.peripherals[name])
        now = time.monotonic()
        with self._cond:
            before = self.states.get(name)
            self.states[name] = health
            if health.status == "ok":
                self._delay[name] = BACKOFF_INITIAL_S
                self._due[name] = now + POLL_S
            else:
                self._due[name] = now + self._delay[name]
                self._delay[name] = min(self._delay[name] * 2, BACKOFF_MAX_S)
            self._cond.notify_all()
        if before is None or before.status != health.status:
            if before is not None and health.status == "ok":
                _LOG.info("peripheral %s recovered", name)
            elif health.status != "ok":
                _LOG.warning("peripheral %s %s: %s", name, health.status, health.detail)
            if self.on_change is not None:
                self.on_change(name, health)
        return health

    def check_all(self) -> dict[str, Health]:
        """Probe everything once."""
        for name in self.peripherals:
            self.check(name)
        return dict(self.states)

    @property
    def device_state(self) -> str:
        """"ok" when every peripheral is, else "degraded" (the device keeps working without it)."""
        return "ok" if all(h.status == "ok" for h in self.states.values()) else "degraded"

    def summary(self) -> dict[str, Any]:
        """A view model for the kiosk and the admin API."""
        with self._cond:
            return {"state": self.device_state,
                    "peripherals": {n: {"status": h.status, "detail": h.detail} for n, h in self.states.items()}}

    def wait_for(self, name: str, status: str, timeout: float) -> bool:
        """Block until `name` was last seen with `status` (tests and the admin API await this)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.states.get(name, Health("", "")).status == status, timeout)

    def _run(self) -> None:
        # No sd_notify here: READY/WATCHDOG come from the app's own loop (sync.notify.Watchdog), so a
        # wedged frame loop is restarted even while this thread still runs.
        while True:
            with self._cond:
                if self._stop:
                    return
                now = time.monotonic()
                due = [n for n, t in self._due.items() if t <= now]
                if not due:
                    self._cond.wait(timeout=max(0.0, min(self._due.values()) - now))
                    continue
            for name in due:
                try:
                    self.check(name)
                except Exception:  # a probe bug must not end supervision of the other devices
                    _LOG.exception("peripheral %s: probe failed", name)
                    with self._cond:
                        self._due[name] = time.monotonic() + BACKOFF_MAX_S

    def start(self) -> PeripheralSupervisor:
        """Start the supervising thread."""
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="peripheral-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> PeripheralSupervisor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

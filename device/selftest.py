"""`joyedge selftest`: every configured peripheral and model probed, one table a technician can read.

Peripheral checks are declared as a table (`PERIPHERAL_CHECKS`): a name and a probe that opens
the device, asks it something real (a frame, the paper sensor, a read), and closes it again.
Driver errors are translated here, at one boundary: "not there" → missing, "there but not
right" → degraded. The same probes feed the hot-plug supervisor (device/peripherals.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from device.config import DeviceConfig
from device.peripherals import Health, Peripheral, build_peripherals

Status = Literal["ok", "degraded", "missing"]
Target = Literal["inference", "hardware", "all"]


@dataclass(frozen=True)
class CheckRow:
    """One line of the self-test table."""

    name: str
    kind: str  # peripheral | model
    backend: str
    status: Status
    detail: str
    median_ms: float | None = None
    accelerator: str = ""  # models: what it runs on (cpu | edgetpu)
    accelerator_reason: str = ""  # models: why the Edge TPU is not used (full text; said once in the summary)


def _read_one(cam: Any) -> Any:
    """Open a camera (colour or depth), read one frame, close it; the frame or None."""
    cam.open()
    try:
        return cam.read()
    finally:
        cam.close()


def _probe_camera(p: Peripheral) -> tuple[Status, str]:
    frame = _read_one(p.device)
    if frame is None:
        return "degraded", "opened but delivered no frame"
    h, w = frame.image.shape[:2]
    return "ok", f"{w}x{h} frame"


def _probe_depth(p: Peripheral) -> tuple[Status, str]:
    frame = _read_one(p.device)
    if frame is None:
        return "degraded", "opened but delivered no depth frame"
    ratio = frame.valid_ratio()
    h, w = frame.depth_mm.shape
    return ("ok" if ratio >= 0.2 else "degraded"), f"{w}x{h}, {ratio:.0%} of pixels measured"


def _probe_printer(p: Peripheral) -> tuple[Status, str]:
    printer = p.device
    printer.open()
    try:
        st = printer.status()
    finally:
        printer.close()
    if st.state == "ok":
        return "ok", f"ready, {printer.paper_mm} mm paper"
    if st.state == "unknown":
        return "ok", st.detail  # a file or a write-only link: reachable is all we can know
    return "degraded", st.detail


def _probe_drawer(p: Peripheral) -> tuple[Status, str]:
    printer = p.device.printer
    printer.open()
    try:
        st = printer.status()
    finally:
        printer.close()
    where = "opens by the printer's kick pulse"
    if st.drawer_open is None:
        return "ok", where
    return "ok", f"{where}; drawer {'open' if st.drawer_open else 'closed'}"


def _probe_reader(p: Peripheral) -> tuple[Status, str]:
    # Open and close only: a read here could swallow a code the cashier just scanned.
    dev = p.device
    dev.open()
    dev.close()
    return "ok", f"present at {p.source}"


def _probe_display(p: Peripheral) -> tuple[Status, str]:
    display = p.device
    display.open()
    try:
        display.show("JoyEdge", "self-test")
    finally:
        display.close()
    return "ok", f"2x20 on {p.source}"


@dataclass(frozen=True)
class PeripheralCheck:
    """A row of the check table: the peripheral name and how to probe it."""

    name: str
    probe: Callable[[Peripheral], tuple[Status, str]]


PERIPHERAL_CHECKS: tuple[PeripheralCheck, ...] = (
    PeripheralCheck("camera", _probe_camera),
    PeripheralCheck("depth_camera", _probe_depth),
    PeripheralCheck("printer", _probe_printer),
    PeripheralCheck("scanner", _probe_reader),
    PeripheralCheck("customer_display", _probe_display),
    PeripheralCheck("cash_drawer", _probe_drawer),
    PeripheralCheck("call_button", _probe_reader),
)
_BY_NAME = {c.name: c for c in PERIPHERAL_CHECKS}


def probe(p: Peripheral) -> Health:
    """Run the table's probe for `p`; driver errors become missing/degraded, never an exception."""
    from drivers.errors import (
        CameraError,
        DriverError,
        DriverUnavailableError,
        PeripheralMissingError,
        PrinterNotReadyError,
    )

    try:
        status, detail = _BY_NAME[p.name].probe(p)
    except (PeripheralMissingError, DriverUnavailableError) as err:
        return Health("missing", str(err))
    except CameraError as err:  # a camera that cannot be opened is not there, as far as anyone can tell
        return Health("missing", str(err))
    except PrinterNotReadyError as err:
        return Health("degraded", str(err))
    except DriverError as err:
        return Health("degraded", str(err))
    except OSError as err:  # a library error a backend did not translate: still a row, not a traceback
        return Health("missing", f"{type(err).__name__}: {err}")
    return Health(status, detail)


def check_peripherals(cfg: DeviceConfig, *, fake: bool = False, unplugged: Iterable[str] = ()) -> list[CheckRow]:
    """One row per configured peripheral."""
    rows = []
    for name, p in build_peripherals(cfg, fake=fake, unplugged=unplugged).items():
        h = probe(p)
        rows.append(CheckRow(name, "peripheral", p.backend, h.status, h.detail))  # type: ignore[arg-type]
    return rows


def check_model_rows(cfg: DeviceConfig, runs: int = 10) -> list[CheckRow]:
    """One row per model of the store, from inference.selftest.check_models."""
    from inference.selftest import check_models
    from inference.store import ModelStore

    rows = []
    for m in check_models(ModelStore(cfg.inference.model_dir), accelerator=cfg.inference.accelerator, runs=runs):
        detail = m.detail or ""
        if m.status != "missing":
            detail = f"{m.accelerator}, input {m.input_shape}" + (f"; {detail}" if detail else "")
        rows.append(CheckRow(m.name, "model", m.backend, m.status, detail, m.median_ms,
                             accelerator=m.accelerator, accelerator_reason=m.edgetpu_reason))
    return rows


def accelerator_summary(rows: list[CheckRow], requested: str) -> Any:
    """The accelerator findings of the model rows, once (inference.selftest.AcceleratorSummary)."""
    from inference.selftest import summarize_accelerator

    models = [r for r in rows if r.kind == "model"]
    return summarize_accelerator(requested, {r.name: r.accelerator_reason for r in models},
                                 [r.name for r in models if r.accelerator == "edgetpu"])


def run_selftest(cfg: DeviceConfig, target: Target = "all", *, fake: bool = False,
                 unplugged: Iterable[str] = (), runs: int = 10) -> list[CheckRow]:
    """Peripherals, then models (as `target` asks)."""
    rows: list[CheckRow] = []
    if target in ("hardware", "all"):
        rows += check_peripherals(cfg, fake=fake, unplugged=unplugged)
    if target in ("inference", "all"):
        rows += check_model_rows(cfg, runs=runs)
    return rows


def failed(rows: list[CheckRow]) -> bool:
    """True when anything is missing (the command then exits non-zero)."""
    return any(r.status == "missing" for r in rows)


def render_table(rows: list[CheckRow], accelerator: str | None = None) -> str:
    """A fixed-width table: name, backend, status, detail; then the accelerator line (when `accelerator`,
    the requested one, is given and there is something to say) and the count."""
    header = ("name", "backend", "status", "detail")
    body = [(r.name, r.backend, r.status,
             r.detail + (f" ({r.median_ms:.1f} ms)" if r.median_ms is not None else "")) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header[:3])]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
             for row in [header, *body]]
    if accelerator is not None:
        summary = accelerator_summary(rows, accelerator).line()
        if summary:
            lines.append(summary)
    missing = sum(r.status == "missing" for r in rows)
    degraded = sum(r.status == "degraded" for r in rows)
    lines.append(f"{len(rows)} checked: {len(rows) - missing - degraded} ok, {degraded} degraded, {missing} missing")
    return "\n".join(lines)


def render_json(rows: list[CheckRow], accelerator: str | None = None, **context: Any) -> str:
    """One JSON object: context (profile, fake_hardware …), `ok`, `checks` (each model row with its full
    `accelerator_reason`) and, when models were checked and `accelerator` (the requested one) is given, a
    top-level `accelerator` object (requested, models on the Edge TPU / on CPU, the shared reason, per model)."""
    out: dict[str, Any] = {**context, "ok": not failed(rows), "checks": [asdict(r) for r in rows]}
    if accelerator is not None and any(r.kind == "model" for r in rows):
        out["accelerator"] = accelerator_summary(rows, accelerator).as_dict()
    return json.dumps(out, ensure_ascii=False)

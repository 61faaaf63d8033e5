"""Device configuration: a hardware profile (hardware/profiles/*.toml) overridden by a device file.

Both are TOML. The merged result is validated by strict models: an unknown key anywhere is an
error that names the key, the file and the line, so an installer's typo never passes silently.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from device.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parents[1] / "hardware" / "profiles"
PROFILES = ("mirror", "pos-flagship", "pos-mobile")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSection(_Strict):
    kind: Literal["mirror", "pos-flagship", "pos-mobile"]
    model: str = ""
    id: str = "device-local"
    site_id: str = "site-demo"
    store_id: str = "store-demo-01"
    timezone: str = "Asia/Shanghai"
    data_dir: Path = Path("var/device")


class ScreenConfig(_Strict):
    name: str
    view: Literal["mirror", "pos-cashier", "pos-customer"]
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    touch: bool = True


class CameraConfig(_Strict):
    uri: str
    width: int = Field(default=1280, gt=0)
    height: int = Field(default=720, gt=0)
    fps: float = Field(default=15.0, gt=0)

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = v.split(":", 1)[0]
        if scheme not in ("v4l2", "picamera2", "replay", "video"):
            raise ValueError(f"camera uri {v!r}: scheme must be v4l2:, picamera2:, replay: or video:")
        return v


class DepthCameraConfig(_Strict):
    uri: str
    width: int = Field(default=640, gt=0)
    height: int = Field(default=480, gt=0)

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v.split(":", 1)[0] not in ("depth", "depth-replay", "fake-depth", "orbbec", "realsense"):
            raise ValueError(f"depth camera uri {v!r}: scheme must be depth:, depth-replay: or fake-depth:")
        return v


class PrinterConfig(_Strict):
    # usb:VID:PID, serial:/dev/tty…[?baud=N], tcp://HOST[:9100], file:PATH, fake:
    uri: str
    paper_mm: Literal[58, 80] = 80

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v.split(":", 1)[0] not in ("usb", "serial", "tcp", "file", "fake"):
            raise ValueError(f"printer uri {v!r}: use usb:VID:PID, serial:/dev/tty…, tcp://HOST:9100 or file:PATH")
        return v


class InputConfig(_Strict):
    """A scanner (hid/evdev keyboard wedge, serial, camera) or, with kind evdev, a button device."""

    kind: Literal["hid", "serial", "camera", "evdev"]
    source: str
    keymap: Literal["us", "de"] = "us"  # the keyboard layout a wedge scanner is configured for
    terminator: Literal["enter", "tab"] = "enter"
    grab: bool = True  # exclusive: scans must not type into the kiosk browser
    baudrate: int = Field(default=9600, gt=0)
    keys: list[int] = []  # buttons: the key codes to watch (linux/input-event-codes.h); empty = any


class DisplayConfig(_Strict):
    uri: str  # serial:/dev/…[?baud=N] or fake:
    encoding: Literal["ascii", "gb18030"] = "ascii"

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        if v.split(":", 1)[0] not in ("serial", "fake"):
            raise ValueError(f"customer display uri {v!r}: use serial:/dev/tty…")
        return v


class CashDrawerConfig(_Strict):
    via: Literal["printer"] = "printer"
    pin: Literal[2, 5] = 2


class Peripherals(_Strict):
    printer: PrinterConfig | None = None
    scanner: InputConfig | None = None
    customer_display: DisplayConfig | None = None
    cash_drawer: CashDrawerConfig | None = None
    call_button: InputConfig | None = None

    @model_validator(mode="after")
    def _drawer_needs_printer(self) -> Peripherals:
        if self.cash_drawer is not None and self.printer is None:
            raise ValueError("cash_drawer opens by the printer's kick pulse: configure [peripherals.printer]")
        return self


class InferenceConfig(_Strict):
    detector: Literal["short", "full"] = "short"
    accelerator: Literal["auto", "cpu", "edgetpu"] = "auto"
    model_dir: Path | None = None
    threads: int = Field(default=1, ge=1, le=8)


class ImpostorTailConfig(_Strict):
    # Exponential tail of single-pair impostor scores (device/open_set.py). The defaults are the fit on
    # all 29,635 impostor pairs of the 247 faces / 82 people of ../shared/data, beta bootstrapped by
    # people (bench/gallery_scaling.py, bench/RESULTS.md "Gallery size and the greeting threshold");
    # `joyedge eval calibrate` prints a site's own.
    u: float = Field(default=0.89285, ge=-1, lt=1)
    p_u: float = Field(default=0.02001, gt=0, le=1)
    beta: float = Field(default=0.010094, gt=0, lt=1)


class IdentityConfig(_Strict):
    # Cosine similarity of L2-normalised dlib embeddings, calibrated on the shared LFW split
    # (ARCHITECTURE.md); a site recalibrates with `joyedge eval calibrate`.
    match_threshold: float = Field(default=0.93, gt=0, lt=1)
    payment_threshold: float = Field(default=0.95, gt=0, lt=1)
    min_margin: float = Field(default=0.02, ge=0, lt=1)
    # The share of strangers the whole gallery may greet as somebody (mirror) or let skip the phone
    # digits (π-POS): the greeting and payment thresholds rise with the number of templates so that
    # this holds (device/open_set.py). scale_with_gallery = false keeps the fixed thresholds above.
    greeting_fpir: float = Field(default=0.01, gt=0, lt=1)
    payment_fpir: float = Field(default=0.001, gt=0, lt=1)
    scale_with_gallery: bool = True
    impostor_tail: ImpostorTailConfig = ImpostorTailConfig()


class SyncConfig(_Strict):
    cloud: str = "127.0.0.1:50051"
    interval_s: float = Field(default=5.0, gt=0)
    insecure: bool = True


class EnrollmentConfig(_Strict):
    # The static `JOYMEMBER:<member_id>` code carries no secret: anyone who knows a member id could enroll
    # their own face onto that membership. Only for a site whose mini-program cannot show the signed,
    # short-lived code yet (device/mirror/member_qr.py). INSECURE; keep it off.
    legacy_member_qr: bool = False


class UIConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class DeviceConfig(_Strict):
    profile: Literal["mirror", "pos-flagship", "pos-mobile"]
    device: DeviceSection
    screens: list[ScreenConfig]
    camera: CameraConfig
    depth_camera: DepthCameraConfig | None = None
    peripherals: Peripherals = Peripherals()
    inference: InferenceConfig = InferenceConfig()
    identity: IdentityConfig = IdentityConfig()
    sync: SyncConfig = SyncConfig()
    ui: UIConfig = UIConfig()
    enrollment: EnrollmentConfig = EnrollmentConfig()

    @property
    def db_path(self) -> Path:
        """The device's SQLite replica, shared by the app and the sync daemon."""
        return self.device.data_dir / "replica.db"

    @property
    def identity_dir(self) -> Path:
        """Device identity and key material (0700)."""
        return self.device.data_dir / "identity"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read: {err}") from err


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _line_of(path: Path | None, loc: tuple[Any, ...]) -> str:
    """Best-effort 'line N' for the last key of a validation error, so the fix is one look away."""
    if path is None or not loc:
        return ""
    key = next((str(p) for p in reversed(loc) if isinstance(p, str)), None)
    if key is None:
        return ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    pattern = re.compile(rf"^\s*(\[+\s*)?([\w.\"-]*\.)?\"?{re.escape(key)}\"?\s*(=|\])")
    for number, line in enumerate(lines, 1):
        if pattern.match(line):
            return f" (line {number})"
    return ""


def _format_errors(err: ValidationError, sources: list[Path]) -> str:
    parts = []
    for e in err.errors():
        loc = tuple(e["loc"])
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = ""
        for src in reversed(sources):  # the device file wins over the profile, so look there first
            where = _line_of(src, loc)
            if where:
                where = f" in {src}{where}"
                break
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{dotted}: {msg}{where}")
    return "; ".join(parts)


def profile_path(name: str) -> Path:
    """The TOML file of a named hardware profile."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    return PROFILE_DIR / f"{name}.toml"


def load_config(
    config_file: Path | None = None,
    *,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> DeviceConfig:
    """Resolve profile + device file + programmatic overrides into a validated DeviceConfig.

    The profile comes from `profile`, else from the device file's top-level `profile` key.
    """
    device_data: dict[str, Any] = _read_toml(config_file) if config_file else {}
    name = profile or device_data.get("profile")
    if not name:
        raise ConfigError(
            f"{config_file or 'config'}: no profile given: set `profile = \"mirror\"` "
            f"(or {', '.join(PROFILES[1:])}) or pass --profile"
        )
    pfile = profile_path(str(name))
    data = _merge(_read_toml(pfile), device_data)
    data["profile"] = name
    if overrides:
        data = _merge(data, overrides)
    sources = [pfile] + ([config_file] if config_file else [])
    try:
        return DeviceConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"invalid config: {_format_errors(err, sources)}") from err


def dump_config(cfg: DeviceConfig) -> str:
    """The resolved config as TOML-like text for `joyedge config check`."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    lines: list[str] = [f'profile = "{data.pop("profile")}"']

    def emit(prefix: str, table: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict | list)}
        if scalars:
            lines.append(f"\n[{prefix}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in table.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}", v)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{prefix}.{k}]]")
                    lines.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())

    for key, value in data.items():
        if isinstance(value, dict):
            emit(key, value)
        elif isinstance(value, list):
            for item in value:
                lines.append(f"\n[[{key}]]")
                lines.extend(f"{ik} = {_toml_value(iv)}" for ik, iv in item.items())
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

"""The first-boot config: the contract between `joyprov configure` (installer) and `joyedge firstboot`.

`joyprov configure` writes `joyedge-firstboot.toml` into the root of the image's FAT boot partition;
on the device's first boot `joyedge firstboot` reads it from the mounted boot partition, applies it
and erases the secrets. Format (TOML, UTF-8, unknown keys are errors)::

    format = 1                      # this layout; a reader refuses a format it does not know
    profile = "mirror"              # mirror | pos-flagship | pos-mobile (hardware/profiles/*.toml)
    hostname = "mirror-07"          # optional, RFC 1123 label
    [cloud]
    address = "cloud.example.com:443"
    claim_token = "…"               # SECRET: erased by firstboot after enrollment
    ca_pem = '''-----BEGIN CERTIFICATE-----…'''   # optional: the cloud CA the device trusts
    [wifi]                          # optional
    ssid = "Mall-Staff"
    psk = "…"                       # SECRET: erased by firstboot once the network config holds it

Pure Python (standard library only) so both sides import it; neither side duplicates it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace

FILENAME = "joyedge-firstboot.toml"
# After a successful first boot the (secret-free) file is renamed to this, so it runs only once.
DONE_FILENAME = "joyedge-firstboot.done"
FORMAT = 1
PROFILES = ("mirror", "pos-flagship", "pos-mobile")
MAX_CA_PEM = 16384

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$")


class FirstbootFormatError(ValueError):
    """The first-boot config is malformed; the message names the key and what is allowed."""


@dataclass(frozen=True)
class FirstbootConfig:
    """What an installer tells a device before its first boot."""

    profile: str
    cloud: str  # HOST:PORT of the cloud's DeviceRegistry
    claim_token: str | None  # None once erased
    hostname: str | None = None
    wifi_ssid: str | None = None
    wifi_psk: str | None = None  # None once erased (or for an open network)
    ca_pem: str | None = None  # the cloud's CA certificate (public): checked before the token is sent

    def validate(self) -> FirstbootConfig:
        """Raise FirstbootFormatError naming the first bad field; return self when all is well."""
        if self.profile not in PROFILES:
            raise FirstbootFormatError(f"profile {self.profile!r}: choose one of {', '.join(PROFILES)}")
        check_host_port(self.cloud)
        if self.claim_token is not None and not (8 <= len(self.claim_token) <= 512
                                                 and self.claim_token.isprintable()
                                                 and not any(c.isspace() for c in self.claim_token)):
            raise FirstbootFormatError("claim_token: 8-512 printable characters without spaces")
        if self.hostname is not None and not _HOSTNAME.match(self.hostname):
            raise FirstbootFormatError(
                f"hostname {self.hostname!r}: lowercase letters, digits and '-', at most 63, "
                "not starting or ending with '-'")
        if self.wifi_psk is not None and self.wifi_ssid is None:
            raise FirstbootFormatError("wifi.psk without wifi.ssid")
        if self.wifi_ssid is not None and not 1 <= len(self.wifi_ssid.encode("utf-8")) <= 32:
            raise FirstbootFormatError("wifi.ssid: 1-32 bytes")
        if self.wifi_psk is not None:
            check_psk(self.wifi_psk)
        if self.ca_pem is not None and not (
                self.ca_pem.startswith("-----BEGIN CERTIFICATE-----") and len(self.ca_pem) <= MAX_CA_PEM
                and "\'\'\'" not in self.ca_pem and self.ca_pem.isascii()):
            raise FirstbootFormatError("cloud.ca_pem: a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return self

    def without_secrets(self, *, claim_token: bool = True, wifi_psk: bool = True) -> FirstbootConfig:
        """A copy with the chosen secrets removed (what stays on the boot partition)."""
        return replace(self, claim_token=None if claim_token else self.claim_token,
                       wifi_psk=None if wifi_psk else self.wifi_psk)

    @property
    def has_secrets(self) -> bool:
        """True while a claim token or a WiFi passphrase is still in the file."""
        return self.claim_token is not None or self.wifi_psk is not None


def check_host_port(value: str) -> tuple[str, int]:
    """Split HOST:PORT, raising FirstbootFormatError when it is not one."""
    m = _HOST_PORT.match(value or "")
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise FirstbootFormatError(f"cloud address {value!r}: expected HOST:PORT, e.g. cloud.example.com:443")
    return m.group(1).strip("[]"), int(m.group(2))


def check_psk(psk: str) -> None:
    """WPA2-PSK: 8-63 printable ASCII characters, or exactly 64 hex digits (a raw key)."""
    if len(psk) == 64 and all(c in "0123456789abcdefABCDEF" for c in psk):
        return
    if not (8 <= len(psk) <= 63 and all(32 <= ord(c) < 127 for c in psk)):
        raise FirstbootFormatError("wifi passphrase: 8-63 printable ASCII characters (or 64 hex digits)")


def _q(value: str) -> str:
    """A TOML basic string (escapes quotes, backslashes and control characters)."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def render(cfg: FirstbootConfig) -> str:
    """The file's text for a (validated) config."""
    cfg.validate()
    lines = ["# JoyEdge first-boot config (joyprov configure). Read once by `joyedge firstboot`,",
             "# which erases the secrets below after using them.",
             f"format = {FORMAT}", f"profile = {_q(cfg.profile)}"]
    if cfg.hostname:
        lines.append(f"hostname = {_q(cfg.hostname)}")
    lines += ["", "[cloud]", f"address = {_q(cfg.cloud)}"]
    if cfg.claim_token is not None:
        lines.append(f"claim_token = {_q(cfg.claim_token)}")
    if cfg.ca_pem is not None:
        lines.append("ca_pem = '''\n" + cfg.ca_pem.strip() + "\n'''")  # literal: PEM stays readable
    if cfg.wifi_ssid is not None:
        lines += ["", "[wifi]", f"ssid = {_q(cfg.wifi_ssid)}"]
        if cfg.wifi_psk is not None:
            lines.append(f"psk = {_q(cfg.wifi_psk)}")
    return "\n".join(lines) + "\n"


def _take(table: dict, key: str, where: str, required: bool = False) -> str | None:
    value = table.pop(key, None)
    if value is None:
        if required:
            raise FirstbootFormatError(f"{where}{key}: missing")
        return None
    if not isinstance(value, str):
        raise FirstbootFormatError(f"{where}{key}: must be a string")
    return value


def parse(text: str) -> FirstbootConfig:
    """Parse and validate the file's text; unknown keys and unknown formats are errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FirstbootFormatError(f"not valid TOML: {err}") from err
    fmt = data.pop("format", None)
    if fmt != FORMAT:
        raise FirstbootFormatError(f"format {fmt!r}: this reader understands format = {FORMAT}")
    cloud = data.pop("cloud", None)
    if not isinstance(cloud, dict):
        raise FirstbootFormatError("[cloud]: missing table")
    wifi = data.pop("wifi", {})
    if not isinstance(wifi, dict):
        raise FirstbootFormatError("[wifi]: must be a table")
    cfg = FirstbootConfig(
        profile=_take(data, "profile", "", required=True) or "",
        hostname=_take(data, "hostname", ""),
        cloud=_take(cloud, "address", "cloud.", required=True) or "",
        claim_token=_take(cloud, "claim_token", "cloud."),
        ca_pem=_take(cloud, "ca_pem", "cloud."),
        wifi_ssid=_take(wifi, "ssid", "wifi."),
        wifi_psk=_take(wifi, "psk", "wifi."),
    )
    for where, rest in (("", data), ("cloud.", cloud), ("wifi.", wifi)):
        if rest:
            raise FirstbootFormatError(f"{where}{sorted(rest)[0]}: unknown key")
    return cfg.validate()

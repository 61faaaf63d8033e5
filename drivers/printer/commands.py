"""ESC/POS command bytes, written once above every transport (Epson TM-T20/T88 command reference).

Only the commands JoyEdge uses: initialise, alignment, emphasis, character size, Chinese
(GB18030) mode, QR code (GS ( k, model 2), raster bit image (GS v 0), feed, cut, the drawer kick
pulse, and the real-time status queries (DLE EOT) that tell paper-out from cover-open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ESC, GS, FS, DLE, EOT = b"\x1b", b"\x1d", b"\x1c", b"\x10", b"\x04"

INIT = ESC + b"@"
CHINESE_ON = FS + b"&"  # FS &: two-byte character mode; GB18030 printers read GB18030 from here on
CHINESE_OFF = FS + b"."
LF = b"\n"

QR_MAX_BYTES = 7089  # model 2, version 40, ECC L, numeric: no printer stores more
RASTER_MAX_WIDTH = 576  # dots across 80 mm paper at 203 dpi (58 mm: 384)

StatusState = Literal["ok", "paper_near_end", "paper_out", "cover_open", "offline", "unknown"]


def align(where: Literal["left", "center", "right"]) -> bytes:
    """ESC a n."""
    return ESC + b"a" + bytes([{"left": 0, "center": 1, "right": 2}[where]])


def bold(on: bool) -> bytes:
    """ESC E n."""
    return ESC + b"E" + bytes([1 if on else 0])


def size(width: int = 1, height: int = 1) -> bytes:
    """GS ! n: character magnification 1–8 in each direction."""
    if not (1 <= width <= 8 and 1 <= height <= 8):
        raise ValueError("character size must be 1..8")
    return GS + b"!" + bytes([((width - 1) << 4) | (height - 1)])


def feed(lines: int) -> bytes:
    """ESC d n: print and feed n lines."""
    return ESC + b"d" + bytes([max(0, min(255, lines))])


def cut(partial: bool = False) -> bytes:
    """GS V 65/66 0: feed to the cutter and cut (full or partial)."""
    return GS + b"V" + bytes([66 if partial else 65, 0])


def kick_drawer(pin: Literal[2, 5] = 2, on_ms: int = 100, off_ms: int = 500) -> bytes:
    """ESC p m t1 t2: a pulse on drawer connector pin 2 or 5 (times in units of 2 ms)."""
    return ESC + b"p" + bytes([0 if pin == 2 else 1, min(255, on_ms // 2), min(255, off_ms // 2)])


def qr(data: str, module: int = 6, ecc: Literal["L", "M", "Q", "H"] = "M") -> bytes:
    """GS ( k: select model 2, module size, error correction, store the data, print it."""
    payload = data.encode("utf-8")
    if not payload or len(payload) > QR_MAX_BYTES:
        raise ValueError(f"QR data must be 1..{QR_MAX_BYTES} bytes, got {len(payload)}")
    if not 1 <= module <= 16:
        raise ValueError("QR module size must be 1..16")
    n = len(payload) + 3

    def fn(body: bytes) -> bytes:
        return GS + b"(k" + bytes([len(body) & 0xFF, len(body) >> 8]) + body

    return (
        fn(b"1A2\x00")  # fn 165: model 2
        + fn(b"1C" + bytes([module]))  # fn 167: module size in dots
        + fn(b"1E" + bytes([{"L": 48, "M": 49, "Q": 50, "H": 51}[ecc]]))  # fn 169: ECC level
        + GS + b"(k" + bytes([n & 0xFF, n >> 8]) + b"1P0" + payload  # fn 180: store
        + fn(b"1Q0")  # fn 181: print the stored symbol
    )


def raster(bits: bytes, width: int, height: int) -> bytes:
    """GS v 0: a 1-bit image, `bits` packed MSB first, rows of ceil(width/8) bytes, 1 = black."""
    row = (width + 7) // 8
    if len(bits) != row * height:
        raise ValueError(f"raster needs {row * height} bytes for {width}x{height}, got {len(bits)}")
    return GS + b"v0\x00" + bytes([row & 0xFF, row >> 8, height & 0xFF, height >> 8]) + bits


def status_query(n: Literal[1, 2, 4]) -> bytes:
    """DLE EOT n: 1 printer, 2 offline cause, 4 roll paper sensor. The printer answers one byte."""
    return DLE + EOT + bytes([n])


@dataclass(frozen=True)
class PrinterStatus:
    """What a printer said about itself: a state a cashier can act on, and the raw answers."""

    state: StatusState
    detail: str
    drawer_open: bool | None = None


def parse_status(printer: int | None, offline: int | None, paper: int | None) -> PrinterStatus:
    """Interpret DLE EOT 1/2/4 answer bytes (None: no answer). Fixed bits 1 and 4 must be set."""

    def valid(b: int | None) -> bool:
        return b is not None and (b & 0x93) == 0x12  # bits 0 and 7 clear, bits 1 and 4 set

    if not any(valid(b) for b in (printer, offline, paper)):
        return PrinterStatus("unknown", "printer does not answer status queries")
    drawer = bool(printer & 0x04) if valid(printer) else None
    if valid(offline) and offline & 0x04:  # type: ignore[operator]
        return PrinterStatus("cover_open", "printer cover is open: close it", drawer)
    if (valid(paper) and paper & 0x60) or (valid(offline) and offline & 0x20):  # type: ignore[operator]
        return PrinterStatus("paper_out", "paper roll is empty: load a new roll", drawer)
    if valid(printer) and printer & 0x08:  # type: ignore[operator]
        return PrinterStatus("offline", "printer is offline", drawer)
    if valid(paper) and paper & 0x0C:  # type: ignore[operator]
        return PrinterStatus("paper_near_end", "paper roll is nearly empty", drawer)
    return PrinterStatus("ok", "ready", drawer)

"""The receipt renderer: a Receipt (title, items, totals, QR, logo) → ESC/POS bytes for 58 or 80 mm.

Layout is counted in display columns of the printer's 12×24 font: 32 columns on 58 mm paper,
48 on 80 mm. A Chinese character is two columns wide (east-asian width W/F), so "可乐 ×2" and
"Cola x2" line up with the prices on the right. All text is sent in GB18030 inside FS & … FS .,
which is what Chinese thermal printers (Xprinter, Sunmi, Epson TM-T82 CN) read.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Literal

from drivers.printer import commands as cmd

COLUMNS = {58: 32, 80: 48}
DOTS = {58: 384, 80: 576}


@dataclass(frozen=True)
class ReceiptLine:
    """One item: a name on the left, an amount on the right."""

    name: str
    amount: str


@dataclass(frozen=True)
class Logo:
    """A 1-bit image already packed for GS v 0 (see `logo_from_image`)."""

    bits: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Receipt:
    """What a receipt says; the renderer decides how it looks on the paper."""

    title: str
    lines: list[ReceiptLine] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    totals: list[ReceiptLine] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    qr: str | None = None
    logo: Logo | None = None


def width_of(text: str) -> int:
    """Display columns of `text` on the printer: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def clip(text: str, columns: int) -> str:
    """The longest prefix of `text` that fits in `columns`."""
    out, used = [], 0
    for ch in text:
        w = width_of(ch)
        if used + w > columns:
            break
        out.append(ch)
        used += w
    return "".join(out)


def two_columns(left: str, right: str, columns: int) -> str:
    """`left` and `right` on one line, the name clipped so the amount always shows."""
    right = clip(right, columns)
    left = clip(left, max(0, columns - width_of(right) - 1))
    return left + " " * (columns - width_of(left) - width_of(right)) + right


def logo_from_image(image, paper_mm: Literal[58, 80] = 80) -> Logo:  # image: PIL.Image.Image
    """Pack a Pillow image as a 1-bit logo no wider than the paper (dark pixels print)."""
    from PIL import Image

    im = image.convert("L")
    if im.width > DOTS[paper_mm]:
        im = im.resize((DOTS[paper_mm], max(1, im.height * DOTS[paper_mm] // im.width)))
    # Threshold by hand rather than convert("1"): Pillow's default dithers, which blurs a logo.
    mono = im.point(lambda v: 0 if v < 128 else 255, mode="1")
    inverted = Image.eval(mono.convert("L"), lambda v: 255 - v).convert("1")  # 1 bit = black dot
    width, height = inverted.size
    return Logo(inverted.tobytes(), width, height)


def render(receipt: Receipt, paper_mm: Literal[58, 80] = 80) -> bytes:
    """The ESC/POS job: starts with ESC @, ends with a cut."""
    cols = COLUMNS[paper_mm]
    rule = b"-" * cols + cmd.LF
    out = bytearray(cmd.INIT + cmd.CHINESE_ON)

    def text(s: str) -> None:
        out.extend(clip(s, cols).encode("gb18030") + cmd.LF)

    if receipt.logo is not None:
        out += cmd.align("center") + cmd.raster(receipt.logo.bits, receipt.logo.width, receipt.logo.height)
        out += cmd.LF
    out += cmd.align("center") + cmd.bold(True) + cmd.size(2, 2)
    out.extend(clip(receipt.title, cols // 2).encode("gb18030") + cmd.LF)
    out += cmd.size(1, 1) + cmd.bold(False)
    for line in receipt.header:
        text(line)
    out += cmd.align("left") + rule
    for item in receipt.lines:
        text(two_columns(item.name, item.amount, cols))
    if receipt.totals:
        out += rule + cmd.bold(True)
        for item in receipt.totals:
            text(two_columns(item.name, item.amount, cols))
        out += cmd.bold(False)
    if receipt.footer or receipt.qr:
        out += cmd.align("center")
    for line in receipt.footer:
        text(line)
    if receipt.qr:
        out += cmd.qr(receipt.qr, module=6 if paper_mm == 80 else 4) + cmd.LF
    out += cmd.CHINESE_OFF + cmd.feed(3) + cmd.cut()
    return bytes(out)


def sample_receipt(paper_mm: Literal[58, 80] = 80, with_logo: bool = True) -> Receipt:
    """The receipt `joyedge print-test` prints: Chinese and Latin text, a QR code, a logo."""
    logo = None
    if with_logo:
        from PIL import Image, ImageDraw

        im = Image.new("L", (96, 48), 255)
        draw = ImageDraw.Draw(im)
        draw.rectangle((0, 0, 95, 47), outline=0, width=4)
        draw.rectangle((16, 12, 79, 35), fill=0)
        logo = logo_from_image(im, paper_mm)
    return Receipt(
        title="悦云 JoyEdge",
        header=["打印测试 / print test", f"纸宽 {paper_mm} mm"],
        lines=[ReceiptLine("矿泉水 Water ×2", "¥4.00"), ReceiptLine("三明治 Sandwich", "¥18.50")],
        totals=[ReceiptLine("合计 Total", "¥22.50")],
        footer=["谢谢惠顾，欢迎再来！"],
        qr="https://joyedge.example/selftest",
        logo=logo,
    )

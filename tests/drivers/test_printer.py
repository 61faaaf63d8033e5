"""Receipt printer: exact ESC/POS bytes over loopback TCP and to a file, status states, URIs."""

from __future__ import annotations

import pytest

from drivers.errors import PeripheralMissingError, PrinterError, PrinterNotReadyError
from drivers.printer import Receipt, ReceiptLine, open_printer, parse_printer_uri, render, sample_receipt
from drivers.printer.fake import FakePrinter
from drivers.printer.receipt import two_columns, width_of

KNOWN = Receipt(title="悦云", lines=[ReceiptLine("水", "2.00")], qr="J1")
# The known receipt on 58 mm paper, written out from the ESC/POS reference, not from the renderer.
KNOWN_BYTES = (
    b"\x1b@" b"\x1c&"  # ESC @ initialise; FS & two-byte (GB18030) mode
    b"\x1ba\x01" b"\x1bE\x01" b"\x1d!\x11" b"\xd4\xc3\xd4\xc6\n"  # centre, bold, 2x2, 悦云 in GB18030
    b"\x1d!\x00" b"\x1bE\x00"  # normal size, bold off
    b"\x1ba\x00" + b"-" * 32 + b"\n"  # left; a rule across 32 columns
    b"\xcb\xae" + b" " * 26 + b"2.00\n"  # 水 (2 columns) ... 2.00 right-aligned
    b"\x1ba\x01"  # centre the QR code
    b"\x1d(k\x04\x001A2\x00" b"\x1d(k\x03\x001C\x04" b"\x1d(k\x03\x001E1"  # model 2, 4-dot modules, ECC M
    b"\x1d(k\x05\x001P0J1" b"\x1d(k\x03\x001Q0\n"  # store "J1", print it
    b"\x1c." b"\x1bd\x03" b"\x1dVA\x00"  # leave GB18030 mode, feed 3 lines, cut
)
STATUS_QUERIES = b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"


def test_known_receipt_renders_to_exact_bytes():
    assert render(KNOWN, 58) == KNOWN_BYTES


def test_loopback_tcp_printer_receives_exact_bytes(loopback_printer):
    printer = open_printer(f"tcp://127.0.0.1:{loopback_printer.port}", paper_mm=58)
    with printer:
        assert printer.status().state == "ok"
        assert printer.print_receipt(KNOWN) == len(KNOWN_BYTES)
    assert loopback_printer.done.wait(5)
    # status once by hand, once before the job; then the job itself, byte for byte
    assert bytes(loopback_printer.received) == STATUS_QUERIES * 2 + KNOWN_BYTES


@pytest.mark.parametrize(("answers", "state"), [
    ({1: 0x12, 2: 0x32, 4: 0x72}, "paper_out"),
    ({1: 0x12, 2: 0x16, 4: 0x12}, "cover_open"),
])
def test_tcp_printer_not_ready_refuses_the_job(loopback_printer, answers, state):
    loopback_printer.answers = answers
    with open_printer(f"tcp://127.0.0.1:{loopback_printer.port}") as printer:
        with pytest.raises(PrinterNotReadyError) as err:
            printer.print_receipt(KNOWN)
    assert err.value.state == state
    assert loopback_printer.done.wait(5)
    assert bytes(loopback_printer.received) == STATUS_QUERIES  # nothing printed into a dead printer


def test_file_printer_writes_the_job(tmp_path):
    out = tmp_path / "r.bin"
    with open_printer(f"file:{out}", paper_mm=58) as printer:
        assert printer.status().state == "unknown"
        printer.print_receipt(KNOWN)
    assert out.read_bytes() == KNOWN_BYTES


def test_sample_receipt_has_chinese_qr_logo_and_cut():
    job = render(sample_receipt(80), 80)
    assert job.startswith(b"\x1b@") and job.endswith(b"\x1dVA\x00")
    assert "谢谢惠顾".encode("gb18030") in job and b"\x1d(k" in job and b"\x1dv0\x00" in job


def test_fake_printer_states_and_drawer_kick():
    printer = FakePrinter()
    printer.open()
    assert printer.status().state == "ok"
    printer.paper = "near_end"
    assert printer.ensure_ready().state == "paper_near_end"  # warns, still prints
    printer.paper = "out"
    with pytest.raises(PrinterNotReadyError, match="load a new roll"):
        printer.print_receipt(KNOWN)
    printer.paper, printer.cover_open = "ok", True
    assert printer.status().state == "cover_open"
    printer.cover_open = False
    printer.kick_drawer()
    assert printer.jobs() == b"\x1bp\x00\x32\xfa"
    printer.unplug()
    with pytest.raises(PrinterError, match="lost the connection"):
        printer.kick_drawer()
    printer.close()
    with pytest.raises(PeripheralMissingError):
        printer.open()


def test_unreachable_printer_is_missing():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(PeripheralMissingError, match="not found"):
        open_printer(f"tcp://127.0.0.1:{port}").open()


def test_uris_parse_or_fail_clearly():
    assert parse_printer_uri("usb:04b8:0202") == ("usb", {"vendor": 0x04B8, "product": 0x0202})
    assert parse_printer_uri("serial:/dev/rfcomm0?baud=115200") == ("serial", {"port": "/dev/rfcomm0", "baudrate": 115200})
    assert parse_printer_uri("tcp://10.0.0.9") == ("network", {"host": "10.0.0.9", "port": 9100})
    for bad in ("lpt1", "usb:zz:1", "tcp://", "file:", "ipp://x"):
        with pytest.raises(PrinterError):
            parse_printer_uri(bad)


def test_layout_counts_chinese_as_two_columns():
    assert width_of("可乐x2") == 6
    line = two_columns("一二三四五六七八九十一二三四五六", "12.00", 32)
    assert width_of(line) <= 32 and line.endswith("12.00")

"""python-escpos logs through the root logger (`logging.info("File printer enabled")` in
escpos/printer/file.py, network.py, serial.py, usb.py). At our boundary (drivers/printer/_escpos.py)
those lines go to the `drivers.printer.escpos` logger at DEBUG instead: no root-logger line, no
implicit `logging.basicConfig()` in a process that configured no logging, our format and levels."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.errors import PeripheralMissingError
from drivers.printer import open_printer
from tests.drivers.test_printer import KNOWN, KNOWN_BYTES

ROOT = Path(__file__).resolve().parents[2]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_print_through_the_file_transport_leaves_no_root_logger_line(tmp_path):
    collect = _Collect()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        out = tmp_path / "receipt.bin"
        printer = open_printer(f"file:{out}", paper_mm=58)
        with printer:
            printer.print_receipt(KNOWN)
        missing = open_printer(f"file:{tmp_path}/no/such/dir/lp0", paper_mm=58)
        with pytest.raises(PeripheralMissingError):
            missing.open()
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
    assert out.read_bytes() == KNOWN_BYTES
    on_root = [r for r in collect.records if r.name == "root"]
    assert on_root == [], [(r.levelname, r.pathname, r.getMessage()) for r in on_root]
    ours = [r for r in collect.records if r.name == "drivers.printer.escpos"]
    assert any("File printer enabled" in r.getMessage() for r in ours)
    assert any("Closing File connection" in r.getMessage() for r in ours)
    assert {r.levelno for r in ours} == {logging.DEBUG}


def test_no_implicit_basic_config_in_a_process_without_logging(tmp_path):
    """GIVEN a process that never configured logging, WHEN it prints through escpos, THEN the root
    logger still has no handler (logging.info() would have called basicConfig()) and stderr is empty."""
    code = (
        "import logging, sys\n"
        "from drivers.printer import open_printer\n"
        "from tests.drivers.test_printer import KNOWN\n"
        f"p = open_printer('file:{tmp_path / 'r.bin'}', paper_mm=58)\n"
        "with p:\n    p.print_receipt(KNOWN)\n"
        "print(len(logging.getLogger().handlers))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (done.stdout.strip(), done.stderr) == ("0", "")

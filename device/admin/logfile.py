"""The device's log files: each long-running `joyedge` process logs to `<data_dir>/logs/<name>.log`
(rotating, so a chatty night never fills the card), and the admin API reads them back.

One file per process, not one shared file: two processes rotating the same file race (one renames
it while the other still appends), and a merged tail is cheap to compute on read.
"""

from __future__ import annotations

import heapq
import logging
import logging.handlers
import re
from datetime import datetime
from pathlib import Path

#: Size of one log file before it rotates, and how many old ones are kept (per process).
MAX_BYTES = 1024 * 1024
BACKUPS = 5
#: Most lines one Logs call returns (a bigger tail is cut, oldest lines first).
MAX_LINES = 5000
DEFAULT_TAIL = 200
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")


def log_dir(data_dir: Path) -> Path:
    """Where the log files live."""
    return Path(data_dir) / "logs"


def setup_file_logging(data_dir: Path, name: str) -> Path:
    """Add a rotating file handler for this process (idempotent); the file path."""
    d = log_dir(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.log"
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler) and Path(h.baseFilename) == path.resolve():
            return path
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return path


def _stamp_ms(line: str) -> int | None:
    m = _STAMP.match(line)
    if m is None:
        return None
    t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")  # local time, as logging writes it
    return int(t.timestamp() * 1000) + int(m.group(2))


def _file_lines(path: Path) -> list[tuple[int, str]]:
    """(time ms, line) of one file; a continuation line (traceback) takes the time of its record."""
    out: list[tuple[int, str]] = []
    last = 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out  # rotated away between listing and reading
    for line in text.splitlines():
        ms = _stamp_ms(line)
        last = ms if ms is not None else last
        out.append((last, line))
    return out


def read_logs(data_dir: Path, *, tail: int = 0, since_ms: int = 0) -> tuple[list[str], bool]:
    """Lines of every log file (rotated ones too) merged by time, oldest first, each prefixed with
    its process (`run | …`); (lines, truncated).

    `since_ms` keeps lines at or after that time; `tail` the last N (default DEFAULT_TAIL, at most
    MAX_LINES).
    """
    d = log_dir(data_dir)
    want = min(tail or DEFAULT_TAIL, MAX_LINES)
    streams = []
    for current in sorted(d.glob("*.log")):
        files = [current.with_name(f"{current.name}.{i}") for i in range(BACKUPS, 0, -1)] + [current]
        lines: list[tuple[int, str]] = []
        for f in files:
            if f.exists():
                lines += [(ms, f"{current.stem} | {line}") for ms, line in _file_lines(f)]
        streams.append(lines)
    merged = [line for ms, line in heapq.merge(*streams, key=lambda x: x[0]) if ms >= since_ms]
    return merged[-want:], len(merged) > want

"""Fixtures shared by every test: the shared photo set, a browser on Debian's chromium, leak checks."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JOYEDGE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real photos and clips in ../shared/data. A test that needs them fails loudly without them."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(
            f"test data folder {SHARED_DATA} is missing: tests read real photos from ../shared/data "
            "(set JOYEDGE_SHARED_DATA to point elsewhere)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, browser_name):
    """Drive Debian's chromium: `playwright install` cannot download browsers here."""
    args = dict(browser_type_launch_args)
    if browser_name in (None, "chromium"):
        exe = shutil.which("chromium")
        if exe is None:
            pytest.fail("chromium is not installed: run `make test` (it apt-installs chromium) or tools/bootstrap-system.sh")
        args["executable_path"] = exe
        args["args"] = [
            *args.get("args", []),
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ]
    return args


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running (servers not stopped, pools not shut)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    # Playwright's event-loop threads ("asyncio_N") live for the whole browser session on purpose.
    leaked = [
        t for t in threading.enumerate()
        if t.ident not in before and t.is_alive() and not t.daemon and not t.name.startswith("asyncio_")
    ]
    for t in leaked:
        t.join(timeout=2.0)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"

"""A supervising camera: reconnects a lost source with backoff and restarts a stalled one.

It wraps any CameraSource built by a factory. Reads run on a worker thread so that a read that
never returns (a wedged UVC driver) is noticed after `STALL_TIMEOUT_S`: the source is closed, a
new one is built and opened, and the caller simply gets the next good frame. While the source is
gone `read()` keeps retrying (backoff `BACKOFF_INITIAL_S` doubling to `BACKOFF_MAX_S`) until the
camera returns or `close()` is called; `state` and `on_state` say "ok" or "degraded" meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from drivers.camera.base import CameraSource, Frame
from drivers.errors import CameraError

_LOG = logging.getLogger(__name__)

STALL_TIMEOUT_S = 5.0
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


class _Worker:
    """Runs `source.read()` on request on its own daemon thread; abandoned when the source stalls."""

    def __init__(self, source: CameraSource) -> None:
        self.source = source
        self.requests: queue.Queue[bool] = queue.Queue()
        self.results: queue.Queue[tuple[Frame | None, CameraError | None]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"camera-read-{source.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.requests.get():
            try:
                self.results.put((self.source.read(), None))
            except CameraError as err:
                self.results.put((None, err))
            except Exception as err:  # a backend's library error must not kill the worker silently
                self.results.put((None, CameraError(f"camera {self.source.name}: {err}")))

    def stop(self) -> None:
        self.requests.put(False)


class SupervisedCamera(CameraSource):
    """`SupervisedCamera(lambda: V4L2Camera("/dev/video0"))`: the app's camera that never gives up."""

    def __init__(self, factory: Callable[[], CameraSource], *,
                 on_state: Callable[[str, str], None] | None = None) -> None:
        self.factory = factory
        self.on_state = on_state
        self.name = "supervised"
        self.state = "closed"
        self.detail = ""
        self.restarts = 0
        self._source: CameraSource | None = None
        self._worker: _Worker | None = None
        self._closed = threading.Event()

    def _set(self, state: str, detail: str) -> None:
        if (state, detail) != (self.state, self.detail):
            self.state, self.detail = state, detail
            (_LOG.info if state == "ok" else _LOG.warning)("camera: %s%s", state, f" ({detail})" if detail else "")
            if self.on_state is not None:
                self.on_state(state, detail)

    def _connect(self) -> None:
        source = self.factory()
        source.open()
        self.name = f"supervised:{source.name}"
        self._source, self._worker = source, _Worker(source)

    def _drop(self) -> None:
        source, worker = self._source, self._worker
        self._source = self._worker = None
        if worker is not None:
            worker.stop()
        if source is not None:
            try:
                source.close()
            except Exception as err:  # closing a wedged or vanished device may fail; it is replaced anyway
                _LOG.debug("camera: close failed: %s", err)

    def open(self) -> None:
        """Open the first source; a camera missing at start is an error the installer must see."""
        self._closed.clear()
        self._connect()
        self._set("ok", "")

    def read(self) -> Frame | None:
        """The next frame; blocks through reconnects; None at the end of a finite source or after close()."""
        delay = BACKOFF_INITIAL_S
        while not self._closed.is_set():
            worker = self._worker
            if worker is None:
                try:
                    self._connect()
                    self.restarts += 1
                    continue
                except CameraError as err:
                    self._set("degraded", f"reconnecting: {err}")
                    if self._closed.wait(delay):
                        break
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
            worker.requests.put(True)
            try:
                frame, err = worker.results.get(timeout=STALL_TIMEOUT_S)
            except queue.Empty:
                self._set("degraded", f"no frame for {STALL_TIMEOUT_S:g} s: restarting the camera")
                self._drop()
                continue
            if err is not None:
                self._set("degraded", str(err))
                self._drop()
                continue
            if frame is not None:
                self._set("ok", "")
            return frame
        return None

    def close(self) -> None:
        """Stop: wakes a read that waits for a reconnect, releases the device."""
        self._closed.set()
        self._drop()
        self.state = "closed"

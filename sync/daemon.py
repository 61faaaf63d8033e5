"""The sync daemon: the coordinator that alone owns pulling, backoff and sync status.

Like a Home Assistant coordinator, it keeps the last good state and a status object other
parts only read. Timing constants are module-level so tests can shrink them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field

from api.v1 import sync_pb2
from sync.client import SyncClient
from sync.errors import CloudUnavailableError, SyncError
from sync.replica import STREAM_NAMES, Replica

_LOG = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_ROUNDS_PER_SYNC = 10_000  # a safety stop; a cold sync of 10^5 members needs a few hundred


@dataclass
class SyncStatus:
    """What the device app and `joyedge sync` show about sync health."""

    state: str = "starting"  # starting | online | offline | error
    last_success: float | None = None
    last_error: str | None = None
    applied: dict[str, int] = field(default_factory=dict)


class SyncDaemon:
    """Pulls every stream until caught up; run once or forever with jittered backoff."""

    def __init__(self, replica: Replica, client: SyncClient, *, device_id: str, site_id: str,
                 store_id: str, interval_s: float = 5.0) -> None:
        self.replica = replica
        self.client = client
        self.device_id, self.site_id, self.store_id = device_id, site_id, store_id
        self.interval_s = interval_s
        self.status = SyncStatus()

    def sync_once(self) -> dict[str, int]:
        """Pull until no stream has more; returns rows applied per stream name."""
        applied = {name: 0 for name in STREAM_NAMES.values()}
        for _ in range(MAX_ROUNDS_PER_SYNC):
            cursors = self.replica.cursors()
            request = sync_pb2.PullRequest(
                device_id=self.device_id, site_id=self.site_id, store_id=self.store_id,
                cursors=[sync_pb2.Cursor(stream=s, seq=seq) for s, seq in cursors.items()],
            )
            response = self.client.pull(request)
            more = False
            for batch in response.batches:
                applied[STREAM_NAMES[batch.stream]] += self.replica.apply_batch(batch)
                more = more or batch.has_more
            if not more:
                break
        self.status.state = "online"
        self.status.last_success = time.time()
        self.status.last_error = None
        self.status.applied = applied
        return applied

    def run(self, stop: threading.Event) -> None:
        """Sync every interval until `stop` is set; back off with jitter while the cloud is away."""
        backoff = BACKOFF_INITIAL_S
        while not stop.is_set():
            try:
                applied = self.sync_once()
                if any(applied.values()):
                    _LOG.info("sync: applied %s", ", ".join(f"{k}={v}" for k, v in applied.items() if v))
                backoff = BACKOFF_INITIAL_S
                wait = self.interval_s
            except CloudUnavailableError as err:
                self.status.state, self.status.last_error = "offline", str(err)
                _LOG.warning("sync: %s; retrying in %.1f s", err, backoff)
                wait = backoff * random.uniform(0.5, 1.5)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            except SyncError as err:
                self.status.state, self.status.last_error = "error", str(err)
                _LOG.error("sync: %s; retrying in %.1f s", err, backoff)
                wait = backoff * random.uniform(0.5, 1.5)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            stop.wait(wait)

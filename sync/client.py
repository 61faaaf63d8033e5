"""The device's gRPC client to the cloud's Sync service. gRPC errors become SyncErrors here.

Every call has a deadline. Transient failures (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED)
are retried `RETRY_ATTEMPTS` times with jittered exponential backoff before they surface as
CloudUnavailableError (the daemon then backs off for longer). Requests are gzip-compressed.
Keepalive: one ping per `KEEPALIVE_TIME_MS` and never without an active call, which stays inside
gRPC's default server ping policy (min 5 min between pings without data; our cloud allows 30 s).
Plain text only on loopback, and only when asked for; otherwise mTLS credentials are required.
With `identity_dir` the channel follows the device's certificate across rotations done by any
process (`sync.channel.DeviceChannel`): the daemon never keeps presenting a retired certificate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc

from api.v1 import sync_pb2, sync_pb2_grpc
from sync.channel import DeviceChannel
from sync.errors import CloudUnavailableError, SnapshotUnsupportedError, SyncError
from sync.identity import DeviceIdentity

PULL_DEADLINE_S = 20.0
PUSH_DEADLINE_S = 15.0
SNAPSHOT_DEADLINE_S = 900.0  # a whole site: 1.3 M rows take ~20 s here, minutes on a small board
RETRY_ATTEMPTS = 3
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 2.0
KEEPALIVE_TIME_MS = 60_000
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 2),
    ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
    ("grpc.enable_retries", 0),  # our own retries below: one policy, visible in one place
]
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
R = TypeVar("R")


def _is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def backoff_delays(initial: float, maximum: float) -> Callable[[], float]:
    """A generator of jittered exponential delays ("full jitter" around the doubling value)."""
    state = {"next": initial}

    def delay() -> float:
        d = state["next"] * random.uniform(0.5, 1.5)
        state["next"] = min(state["next"] * 2, maximum)
        return d

    return delay


class SyncClient:
    """A channel to the cloud's Sync service: plain text on loopback, fixed mTLS `credentials`, or
    (`identity_dir`) mTLS that follows the device's certificate files."""

    def __init__(self, target: str, *, insecure: bool = False, credentials: grpc.ChannelCredentials | None = None,
                 options: Sequence[tuple[str, Any]] = (), identity_dir: str | Path | None = None,
                 identity: DeviceIdentity | None = None) -> None:
        opts = [*CHANNEL_OPTIONS, *options]
        if insecure:
            if not _is_loopback(target):
                raise SyncError(f"refusing plain-text gRPC to {target}: --insecure is allowed on loopback only")
            self.channel = DeviceChannel.fixed(
                grpc.insecure_channel(target, options=opts, compression=grpc.Compression.Gzip))
        elif identity_dir is not None:
            # The identity's own options (TLS name override) are added by the channel at each rebuild.
            self.channel = DeviceChannel.follow(identity_dir, target, options=opts, compression=grpc.Compression.Gzip,
                                                identity=identity)
        elif credentials is None:
            raise SyncError(f"no mTLS credentials for {target}: enroll the device first (joyedge enroll), "
                            "or use --insecure on loopback")
        else:
            self.channel = DeviceChannel.fixed(
                grpc.secure_channel(target, credentials, options=opts, compression=grpc.Compression.Gzip))
        self.target = target

    @property
    def follows_identity(self) -> bool:
        """True when the channel follows the identity files (built with `identity_dir`)."""
        return self.channel.follows_identity

    @property
    def identity(self) -> DeviceIdentity | None:
        """The identity the channel presents now (None unless built with `identity_dir`)."""
        return self.channel.identity

    def refresh(self) -> bool:
        """Switch to the certificate in the identity files now (after a rotation by this process)."""
        return self.channel.refresh(force=True)

    def pull(self, request: sync_pb2.PullRequest, *, timeout: float = PULL_DEADLINE_S) -> sync_pb2.PullResponse:
        """One Pull with a deadline (a long poll needs `timeout` above its `wait_ms`)."""
        return self._call("Pull", lambda stub: stub.Pull(request, timeout=timeout))

    def push(self, request: sync_pb2.PushRequest, *, timeout: float = PUSH_DEADLINE_S) -> sync_pb2.PushResponse:
        """One Push with a deadline."""
        return self._call("Push", lambda stub: stub.Push(request, timeout=timeout))

    def snapshot(self, request: sync_pb2.SnapshotRequest, *,
                 timeout: float = SNAPSHOT_DEADLINE_S) -> Iterator[sync_pb2.SnapshotPage]:
        """The pages of one Snapshot stream. Not retried here: a stream cut midway is taken again whole
        (the daemon's backoff), since its pages belong to one read transaction of the cloud. Refused
        before the first page, it goes once more on a new certificate, as unary calls do."""
        for attempt in range(2):
            with self.channel.lease() as gen:
                started = False
                try:
                    for page in gen.stub(sync_pb2_grpc.SyncStub).Snapshot(request, timeout=timeout):
                        started = True
                        yield page
                    return
                except grpc.RpcError as err:
                    code = err.code() if hasattr(err, "code") else None
                    if (code == grpc.StatusCode.UNAUTHENTICATED and attempt == 0 and not started
                            and self.channel.recover(gen)):
                        continue
                    if code == grpc.StatusCode.UNIMPLEMENTED:
                        raise SnapshotUnsupportedError(
                            f"cloud {self.target} serves no Snapshot: {err.details()}") from err
                    raise self._translate("Snapshot", err) from err

    def _translate(self, name: str, err: grpc.RpcError) -> SyncError:
        code = err.code() if hasattr(err, "code") else None
        detail = err.details() if hasattr(err, "details") else str(err)
        if code in _RETRYABLE:
            return CloudUnavailableError(f"cloud {self.target} unavailable for {name} ({code.name}): {detail}")
        cname = code.name if code is not None else "UNKNOWN"
        if code == grpc.StatusCode.INTERNAL and "deserializ" in (detail or "").lower():
            expected = "SnapshotPage" if name == "Snapshot" else f"{name}Response"
            return SyncError(f"cloud {self.target} answered {name} with a message that is not a "
                             f"{expected} (garbage or a wrong server): {detail}")
        return SyncError(f"cloud {self.target} refused {name} ({cname}): {detail}")

    def _call(self, name: str, invoke: Callable[[sync_pb2_grpc.SyncStub], R]) -> R:
        delay = backoff_delays(RETRY_INITIAL_S, RETRY_MAX_S)
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return self.channel.call(sync_pb2_grpc.SyncStub, invoke)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code in _RETRYABLE and attempt + 1 < RETRY_ATTEMPTS:
                    time.sleep(delay())
                    continue
                raise self._translate(name, err) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the channel (and any a certificate change retired)."""
        self.channel.close()

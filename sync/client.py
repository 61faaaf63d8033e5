"""The device's gRPC client to the cloud's Sync service. gRPC errors become SyncErrors here."""

from __future__ import annotations

import grpc

from api.v1 import sync_pb2, sync_pb2_grpc
from sync.errors import CloudUnavailableError, SyncError

PULL_DEADLINE_S = 20.0
# Keepalive inside gRPC's default server ping policy (no more than one ping per 5 min without data
# is what the server tolerates unless configured otherwise); our cloud permits 30 s.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.enable_retries", 1),
]
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _is_loopback(target: str) -> bool:
    host = target.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class SyncClient:
    """A channel to the cloud. Plain-text gRPC only on loopback and only when asked for."""

    def __init__(self, target: str, *, insecure: bool = False) -> None:
        if not insecure:
            raise SyncError("mTLS enrollment is not built yet: pass insecure=True (loopback only)")
        if not _is_loopback(target):
            raise SyncError(f"refusing plain-text gRPC to {target}: --insecure is allowed on loopback only")
        self.target = target
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS, compression=grpc.Compression.Gzip)
        self._stub = sync_pb2_grpc.SyncStub(self._channel)

    def pull(self, request: sync_pb2.PullRequest, *, timeout: float = PULL_DEADLINE_S) -> sync_pb2.PullResponse:
        """One Pull call with a deadline."""
        try:
            return self._stub.Pull(request, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            detail = err.details() if hasattr(err, "details") else str(err)
            if code in _RETRYABLE:
                raise CloudUnavailableError(f"cloud {self.target} unavailable ({code.name}): {detail}") from err
            name = code.name if code is not None else "UNKNOWN"
            raise SyncError(f"cloud {self.target} refused Pull ({name}): {detail}") from err

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

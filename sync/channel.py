"""The gRPC channel every device-side client takes its calls from, following certificate rotations.

A rotation is done by one process (the sync daemon, `admin-serve`, `joyprov rotate-cert` through it),
and the cloud revokes the old certificate `ROTATION_GRACE_S` (120 s) after the new one is first used.
Every other process must then present the new certificate, without a restart:

    chan = DeviceChannel.follow(cfg.identity_dir, cfg.sync.cloud, options=[...])
    answer = chan.call(payment_pb2_grpc.PaymentStub, lambda stub: stub.Authorize(req, timeout=4.0))

- **Follow the files.** At most every `IDENTITY_CHECK_S` a call stats `device.pem` and `device.key`
  (inode, mtime, size: two `stat`s, no parsing). When they changed, the identity is loaded again
  (`DeviceIdentity.load`, safe against a rotation half written, see `sync.identity`); a new serial
  builds a new secure channel for the calls that start from then on. The old channel is closed when
  the last call leased on it returns, so a call in flight (a long poll, a stream) is never cut.
  Files that cannot be read as a pair yet keep the current channel; the next check tries again.
- **Refused.** A call answered UNAUTHENTICATED (the cloud refuses the certificate: revoked, or
  replaced and past its grace) re-reads the identity at once; if the certificate on disk is another
  one, the call is retried once on it. Retrying is safe for any method: the cloud refuses before a
  handler runs. The same certificate, or a second refusal, is raised to the caller as before: one
  retry, never a loop.
- **Fixed.** `DeviceChannel.fixed(channel)` wraps a plain-text loopback channel or one made from
  fixed credentials (tests, tools): same interface, nothing followed.

gRPC errors pass through unchanged: each client still translates them at its own boundary.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc

from sync.errors import SyncError
from sync.identity import CERT_FILE, KEY_FILE, DeviceIdentity

_LOG = logging.getLogger(__name__)

#: Seconds between two looks at the identity files (a look is two `stat` calls). Far inside the
#: cloud's 120 s grace; UNAUTHENTICATED triggers a look at once anyway.
IDENTITY_CHECK_S = 2.0

S = TypeVar("S")
R = TypeVar("R")
_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(identity_dir: Path) -> _Stamp:
    """What changes when a writer replaces the certificate or the key (rename → new inode)."""
    out = []
    for name in (CERT_FILE, KEY_FILE):
        st = os.stat(identity_dir / name)
        out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _code(err: grpc.RpcError) -> grpc.StatusCode | None:
    return err.code() if hasattr(err, "code") else None


class _Generation:
    """One channel and the identity it presents; closed once retired and no call holds it."""

    def __init__(self, channel: grpc.Channel, identity: DeviceIdentity | None) -> None:
        self.channel = channel
        self.identity = identity
        self.in_flight = 0
        self.retired = False
        self._stubs: dict[Any, Any] = {}

    def stub(self, factory: Callable[[grpc.Channel], S]) -> S:
        """A stub of `factory` (a generated *Stub class) on this channel, made once."""
        stub = self._stubs.get(factory)
        if stub is None:
            stub = self._stubs[factory] = factory(self.channel)
        return stub


class DeviceChannel:
    """A channel to the cloud that follows the device's identity files (see module doc)."""

    def __init__(self, make: Callable[[DeviceIdentity | None], grpc.Channel], *,
                 identity_dir: Path | None = None, identity: DeviceIdentity | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make = make
        self._dir = identity_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: _Stamp | None = None
        if identity_dir is not None and identity is None:
            try:
                self._stamp = _stamp(identity_dir)  # before reading: a change meanwhile is seen next time
            except OSError:
                pass  # not enrolled: load says so clearly
            identity = DeviceIdentity.load(identity_dir)
        self._current = _Generation(make(identity), identity)
        self._checked_at = clock()
        self._retired: list[_Generation] = []
        self._closed = False

    @classmethod
    def fixed(cls, channel: grpc.Channel) -> DeviceChannel:
        """A channel that is never rebuilt (plain text on loopback, or fixed credentials)."""
        return cls(lambda _ident: channel)

    @classmethod
    def follow(cls, identity_dir: str | Path, target: str | None = None, *,
               options: Sequence[tuple[str, Any]] = (), compression: grpc.Compression | None = None,
               identity: DeviceIdentity | None = None) -> DeviceChannel:
        """mTLS to `target` (default: the identity's `sync_target`) with the identity in `identity_dir`,
        rebuilt when it changes. `options` come after the identity's own (the TLS name override).
        IdentityError when no identity can be loaded now."""

        def make(ident: DeviceIdentity | None) -> grpc.Channel:
            assert ident is not None
            return grpc.secure_channel(target or ident.sync_target, ident.channel_credentials(),
                                       options=[*ident.channel_options(), *options], compression=compression)

        return cls(make, identity_dir=Path(identity_dir), identity=identity)

    # -- what callers use ---------------------------------------------------------------------------

    @property
    def follows_identity(self) -> bool:
        """True when the channel follows the identity files (False for `fixed`)."""
        return self._dir is not None

    @property
    def identity(self) -> DeviceIdentity | None:
        """The identity the current channel presents (None for `fixed`)."""
        return self._current.identity

    @contextmanager
    def lease(self) -> Iterator[_Generation]:
        """Hold the current channel for one call or stream (`.stub(StubClass)`, `.channel`): a switch
        meanwhile does not close it before the lease ends."""
        gen = self._acquire()
        try:
            yield gen
        finally:
            self._release(gen)

    def call(self, factory: Callable[[grpc.Channel], S], invoke: Callable[[S], R]) -> R:
        """`invoke(stub)` on the current channel; on UNAUTHENTICATED, once more on a new certificate if
        the identity files hold one. grpc.RpcError otherwise, as the stub raised it."""
        with self.lease() as gen:
            try:
                return invoke(gen.stub(factory))
            except grpc.RpcError as err:
                if _code(err) != grpc.StatusCode.UNAUTHENTICATED or not self.recover(gen):
                    raise
        with self.lease() as gen:  # the one retry; a second refusal is the caller's to report
            return invoke(gen.stub(factory))

    def recover(self, refused: _Generation) -> bool:
        """After `refused`'s certificate was refused: True when a call should go again, on another
        certificate (already switched to since, or found on disk now)."""
        if self._dir is None:
            return False
        with self._lock:
            if self._current is not refused:
                return True
            switched = self._reload(force=True)
        if not switched:
            _LOG.warning("the cloud refused certificate %x and the identity files hold no other",
                         refused.identity.serial if refused.identity else 0)
        return switched

    def refresh(self, *, force: bool = False) -> bool:
        """Look at the identity files now (`force`: load them even when they look unchanged);
        True when the channel switched to another certificate."""
        if self._dir is None:
            return False
        with self._lock:
            return self._reload(force=force)

    def close(self) -> None:
        """Close the current channel and every retired one (also those with calls in flight)."""
        with self._lock:
            self._closed = True
            gens, self._retired = [*self._retired, self._current], []
        for gen in gens:
            gen.channel.close()

    # -- internals ----------------------------------------------------------------------------------

    def _acquire(self) -> _Generation:
        with self._lock:
            if self._closed:
                raise SyncError("the channel to the cloud is closed")
            if self._dir is not None and self._clock() - self._checked_at >= IDENTITY_CHECK_S:
                self._reload(force=False)
            gen = self._current
            gen.in_flight += 1
            return gen

    def _release(self, gen: _Generation) -> None:
        with self._lock:
            gen.in_flight -= 1
            done = gen.retired and gen.in_flight == 0 and gen in self._retired
            if done:
                self._retired.remove(gen)
        if done:
            gen.channel.close()

    def _reload(self, *, force: bool) -> bool:
        """With `_lock` held: switch when the files hold another certificate; True when switched."""
        assert self._dir is not None
        self._checked_at = self._clock()
        try:
            stamp = _stamp(self._dir)
            if stamp == self._stamp and not force:
                return False
            ident = DeviceIdentity.load(self._dir)
        except (OSError, SyncError) as err:
            # Mid-write or damaged: keep presenting what works until the files read as a pair again.
            _LOG.warning("identity files in %s not usable now (%s); the channel keeps certificate %x",
                         self._dir, err, self._current.identity.serial if self._current.identity else 0)
            return False
        self._stamp = stamp
        old = self._current
        if old.identity is not None and ident.serial == old.identity.serial:
            return False
        self._current = _Generation(self._make(ident), ident)
        old.retired = True
        if old.in_flight:
            self._retired.append(old)  # closed by the last lease on it
        else:
            old.channel.close()
        _LOG.info("device certificate changed on disk: channel now presents %x (was %x)", ident.serial,
                  old.identity.serial if old.identity else 0)
        return True

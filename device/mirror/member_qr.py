"""Checking the membership QR shown for enrollment: signed, short-lived, this mall's, used once here.

The 悦云 mini-program shows a QR that changes every ~30 s (format: api/member_qr.py). The device
verifies it **offline**: the site's Ed25519 public keys are fetched from the cloud over the device's
own mTLS channel (`MemberQr/GetKeys`, answered only for the certificate's site) and cached in
`<data_dir>/member_qr_keys.json`, so a mirror whose network is down still checks codes. The keys are
fetched when the mirror starts, again when a code names a key id we do not know (the cloud added a key),
and when the cache is older than KEYS_MAX_AGE_S — never more than once per REFRESH_MIN_INTERVAL_S, so a
stream of junk codes cannot hammer the cloud.

Single use: the nonce of every accepted token is remembered in the device's replica file
(`member_qr_nonces`, an app table beside the outbox) until the token has expired (plus the clock
slack), so a photographed QR cannot be replayed at this device, even across an app restart. Another
device would accept it locally within its remaining lifetime (≤ 2 min), but the token travels with
the enrollment and the cloud spends its nonce once for ALL devices (cloud_stub/member_qr.py), so the
second enrollment is refused when it is pushed; the scan itself never needs the cloud online.

The legacy static code `JOYMEMBER:<member_id>` carries no secret: anyone who knows a member id can
print one. It is accepted only with `[enrollment] legacy_member_qr = true` (default off) and logged as
insecure each time.

Refusals are `MemberCodeRejected` with the shopper's message in Chinese and English; logs name the
reason only, never the token's contents.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from api import member_qr as fmt
from device.errors import DeviceError

_LOG = logging.getLogger(__name__)

LEGACY_PREFIX = "JOYMEMBER:"
KEYS_FILE = "member_qr_keys.json"
FETCH_DEADLINE_S = 3.0
REFRESH_MIN_INTERVAL_S = 60.0
# After a failed fetch (cloud slow or away at boot) the next code may ask again sooner: a mirror must not
# refuse every member code for a minute because one call at start timed out.
RETRY_AFTER_FAILURE_S = 5.0
KEYS_MAX_AGE_S = 6 * 3600.0

EXPIRED = ("二维码已过期，请刷新小程序后重试", "This code has expired; refresh the mini-program and try again")
OTHER_SITE = ("非本商场会员码", "This member code belongs to another mall")
INVALID = ("无效的会员码", "Invalid member code; show the code from the Joy Cloud mini-program")
_MESSAGES = {"expired": EXPIRED, "not_yet_valid": EXPIRED, "replayed": EXPIRED, "site": OTHER_SITE}

NONCE_SCHEMA = ("CREATE TABLE IF NOT EXISTS member_qr_nonces (key_id BLOB NOT NULL, nonce BLOB NOT NULL, "
                "until_s INTEGER NOT NULL, PRIMARY KEY (key_id, nonce)) WITHOUT ROWID")


class MemberCodeRejected(DeviceError):
    """A scanned member code is not accepted. `reason` is for logs; `message` (zh, en) for the shopper."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"member code refused ({reason}){': ' + detail if detail else ''}")
        self.reason = reason
        self.message: tuple[str, str] = _MESSAGES.get(reason, INVALID)


def parse_legacy_code(code: str) -> str | None:
    """The member id in a legacy static code (``JOYMEMBER:<member_id>``), or None for any other code."""
    code = code.strip()
    if not code.startswith(LEGACY_PREFIX):
        return None
    member_id = code[len(LEGACY_PREFIX):]
    ok = 0 < len(member_id) <= 64 and all(ch.isalnum() or ch in "-_." for ch in member_id)
    return member_id if ok else None


class KeyFetcher:
    """Calls `MemberQr/GetKeys` for one site over a short-lived channel (a refresh is rare).

    With `identity_dir` each fetch presents the certificate the identity files hold then (a rotation by
    another process is followed, and a refusal retried once on a newer one: `sync.channel`)."""

    def __init__(self, target: str, site_id: str, *, insecure: bool = False, credentials: Any = None,
                 options: Sequence[tuple[str, Any]] = (), deadline_s: float = FETCH_DEADLINE_S,
                 identity_dir: Any = None) -> None:
        if insecure:
            host = target.rsplit(":", 1)[0].strip("[]")
            if not (host in ("localhost", "::1") or host.startswith("127.")):
                raise DeviceError(f"refusing plain-text gRPC to {target}: allowed on loopback only")
        elif credentials is None and identity_dir is None:
            raise DeviceError(f"no mTLS credentials for {target}: enroll the device first (joyedge enroll)")
        self.target, self.site_id, self.insecure = target, site_id, insecure
        self.credentials, self.options, self.deadline_s = credentials, list(options), deadline_s
        self.identity_dir = identity_dir

    def __call__(self) -> list[tuple[bytes, bytes]]:
        """(key id, raw public key) of the site; DeviceError when the cloud cannot be asked or answers nonsense."""
        import grpc

        from api.v1 import member_qr_pb2, member_qr_pb2_grpc
        from sync.channel import DeviceChannel
        from sync.errors import SyncError

        if self.insecure:
            channel = DeviceChannel.fixed(grpc.insecure_channel(self.target, options=self.options))
        elif self.identity_dir is not None:
            try:
                channel = DeviceChannel.follow(self.identity_dir, self.target, options=self.options)
            except SyncError as err:
                raise DeviceError(f"member-QR keys from {self.target}: no device identity ({err})") from err
        else:
            channel = DeviceChannel.fixed(grpc.secure_channel(self.target, self.credentials, options=self.options))
        request = member_qr_pb2.GetMemberQrKeysRequest(site_id=self.site_id)
        try:
            answer = channel.call(member_qr_pb2_grpc.MemberQrStub,
                                  lambda stub: stub.GetKeys(request, timeout=self.deadline_s))
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            raise DeviceError(f"member-QR keys from {self.target}: {code}") from err
        finally:
            channel.close()
        if answer.site_id != self.site_id:
            raise DeviceError(f"the cloud sent member-QR keys of site {answer.site_id!r}, not {self.site_id!r}")
        keys = [(k.key_id, k.public_key) for k in answer.keys]
        if any(len(p) != fmt.PUBLIC_KEY_BYTES or fmt.key_id(p) != kid for kid, p in keys):
            raise DeviceError("the cloud sent a malformed member-QR key")
        return keys


class KeyRing:
    """The site's member-QR public keys: the cached file, refreshed through `fetch` when allowed."""

    def __init__(self, site_id: str, cache_file: Path | None = None,
                 fetch: Callable[[], Sequence[tuple[bytes, bytes]]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.site_id, self.cache_file, self.fetch, self.clock = site_id, cache_file, fetch, clock
        self._keys: dict[bytes, bytes] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._failed = False
        self._load()

    def _load(self) -> None:
        if self.cache_file is None or not self.cache_file.exists():
            return
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            if data.get("site_id") != self.site_id:
                _LOG.warning("member-QR key cache %s is of another site; ignored", self.cache_file)
                return
            keys = {bytes.fromhex(k["key_id"]): bytes.fromhex(k["public_key"]) for k in data["keys"]}
        except (OSError, ValueError, KeyError, TypeError) as err:
            _LOG.warning("member-QR key cache %s unreadable (%s); keys will be fetched", self.cache_file, err)
            return
        self._keys = {kid: pub for kid, pub in keys.items() if fmt.key_id(pub) == kid}

    def _save(self) -> None:
        if self.cache_file is None:
            return
        data = {"site_id": self.site_id, "fetched_at": int(time.time()),
                "keys": [{"key_id": k.hex(), "public_key": p.hex()} for k, p in sorted(self._keys.items())]}
        tmp = self.cache_file.with_name(self.cache_file.name + ".tmp")
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.cache_file)
        except OSError as err:  # the keys still work from RAM until the next start
            _LOG.warning("member-QR keys not cached in %s: %s", self.cache_file, err)

    def keys(self) -> dict[bytes, bytes]:
        """key id → raw public key."""
        return dict(self._keys)

    @property
    def stale(self) -> bool:
        """True when the keys were never fetched by this process or were fetched too long ago."""
        return self._fetched_at is None or self.clock() - self._fetched_at > KEYS_MAX_AGE_S

    def refresh(self) -> bool:
        """Ask the cloud for the keys (at most once per REFRESH_MIN_INTERVAL_S); True when they changed."""
        now = self.clock()
        wait = RETRY_AFTER_FAILURE_S if self._failed else REFRESH_MIN_INTERVAL_S
        if self.fetch is None or (self._tried_at is not None and now - self._tried_at < wait):
            return False
        self._tried_at = now
        try:
            keys = dict(self.fetch())
        except DeviceError as err:
            self._failed = True
            _LOG.warning("member-QR keys not refreshed (cached keys still used): %s", err)
            return False
        self._failed = False
        self._fetched_at = now
        if keys == self._keys:
            return False
        self._keys = keys  # the cloud's list is authoritative: a key it dropped is revoked
        self._save()
        _LOG.info("member-QR keys of %s: %s", self.site_id, ", ".join(k.hex() for k in sorted(keys)) or "none")
        return True


class NonceLedger:
    """Nonces of accepted tokens, kept until they expire: in an SQLite file (the device's replica file,
    table `member_qr_nonces`), or in RAM without one. A connection per use: scans are rare, and the
    ledger is built on one thread and used on the app's loop thread."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = db_path
        self._ram: dict[tuple[bytes, bytes], int] = {}

    def use(self, token: fmt.MemberToken, now: float) -> bool:
        """Record the token's nonce; False when it was already used (a replay)."""
        until = token.expires_at + fmt.CLOCK_SKEW_S
        key = (token.key_id, token.nonce)
        if self.db_path is None:
            self._ram = {k: u for k, u in self._ram.items() if u >= now}
            if key in self._ram:
                return False
            self._ram[key] = until
            return True
        import sqlite3
        from contextlib import closing

        try:
            with closing(sqlite3.connect(self.db_path, timeout=5.0)) as conn, conn:
                conn.execute(NONCE_SCHEMA)
                conn.execute("DELETE FROM member_qr_nonces WHERE until_s < ?", (int(now),))
                cur = conn.execute("INSERT OR IGNORE INTO member_qr_nonces (key_id, nonce, until_s) "
                                   "VALUES (?, ?, ?)", (*key, until))
                return cur.rowcount == 1
        except sqlite3.Error as err:
            # Fail closed: a code whose use cannot be recorded could be replayed.
            raise MemberCodeRejected("ledger", f"nonce not recorded in {self.db_path}: {err}") from err


class MemberCodeVerifier:
    """Turns a scanned code into a member id of this site, or refuses it (`MemberCodeRejected`).

    Two steps, so a code is spent only once it is known to lead somewhere: `verify(code)` checks it
    (signature, site, lifetime, expiry) and `consume(code_token)` marks it used here.
    """

    def __init__(self, site_id: str, keys: KeyRing, nonces: NonceLedger, *, accept_legacy: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.site_id, self.keys, self.nonces = site_id, keys, nonces
        self.accept_legacy, self.clock = accept_legacy, clock

    def verify(self, code: str) -> fmt.MemberToken | str:
        """The verified token, or (legacy codes, when allowed) the bare member id."""
        if not fmt.looks_like_token(code):
            legacy = parse_legacy_code(code)
            if legacy is not None and self.accept_legacy:
                _LOG.warning("enrollment: INSECURE legacy static member code accepted "
                             "([enrollment] legacy_member_qr = true)")
                return legacy
            raise MemberCodeRejected("legacy" if legacy is not None else "not_member_code")
        if self.keys.stale:
            self.keys.refresh()
        try:
            return self._verify(code)
        except fmt.TokenRejected as err:
            # A key we do not know may be one the cloud has just added: ask once, then decide.
            if err.reason == "unknown_key" and self.keys.refresh():
                try:
                    return self._verify(code)
                except fmt.TokenRejected as again:
                    raise MemberCodeRejected(again.reason, str(again)) from again
            raise MemberCodeRejected(err.reason, str(err)) from err

    def _verify(self, code: str) -> fmt.MemberToken:
        return fmt.verify(code, self.keys.keys(), site_id=self.site_id, now=self.clock())

    def consume(self, verified: fmt.MemberToken | str) -> None:
        """Spend a verified token on this device; MemberCodeRejected("replayed") when it was spent already."""
        if isinstance(verified, str):
            return  # a legacy code has nothing to spend: that is why it is insecure
        if not self.nonces.use(verified, self.clock()):
            raise MemberCodeRejected("replayed")

    @staticmethod
    def is_token(verified: fmt.MemberToken | str) -> bool:
        """True for a signed token (which travels with the enrollment for the cloud to check again)."""
        return isinstance(verified, fmt.MemberToken)

    @staticmethod
    def member_id(verified: fmt.MemberToken | str) -> str:
        """The member a verified code names."""
        return verified if isinstance(verified, str) else verified.member_id


def build_verifier(cfg: Any, fetcher: KeyFetcher | None = None) -> MemberCodeVerifier:
    """The verifier of a device config: its site, its cached keys, `fetcher` to refresh them (asked once
    now), nonces in its replica file."""
    ring = KeyRing(cfg.device.site_id, cfg.device.data_dir / KEYS_FILE, fetcher)
    ring.refresh()
    return MemberCodeVerifier(cfg.device.site_id, ring, NonceLedger(cfg.db_path),
                              accept_legacy=cfg.enrollment.legacy_member_qr)

"""The cloud half of the dynamic membership QR: per-site Ed25519 keys, minting tokens, serving the keys.

    joyedge-cloud member qr site-demo-m001 --db var/cloud.db [--ttl 90] [--png qr.png]

Each site has its own signing key, so a token of one mall is worthless at another even if both run
on this cloud. The private keys live next to the database, one file per site in `<db>.memberqr/`
(32 raw bytes, 0600, created on first use) — like the template key `<db>.key`: the reference cloud
keeps its secrets beside its data; a production cloud would hold them in a KMS/HSM.

Devices fetch their site's public keys with `MemberQr/GetKeys` over mTLS (the handler answers only
for the caller certificate's site), cache them, and verify every token offline (api/member_qr.py).
The token format allows several keys per site (key id in every token); this module creates one and
lists every `<site>*.ed25519` file it finds, so a rotation is: add a key file, let devices refresh
(they also refresh on an unknown key id), then make it the signing one. Rotation commands are not built.

Enrollment re-check (`check_enrollment`, called by `device_events` before a pushed template is stored):
the device sends the token it accepted and when it scanned it. The cloud verifies, with the site's keys,
that the token is of the pushing device's site (from its certificate), names the event's member, and was
valid at the scan time (issued-at ≤ scan ≤ expiry, ± the token format's clock slack) — not at arrival:
an offline mirror may push hours later. Bounds on the device's times (skew-corrected): the capture
follows the scan within ENROLL_SESSION_MAX_MS, and is at most ENROLL_MAX_DELAY_MS before arrival and
ENROLL_FUTURE_SLACK_MS after it. Then the nonce is spent in `member_qr_spent` for every device of the
cloud, kept until the token could no longer pass these checks (expiry + slack + ENROLL_MAX_DELAY_MS +
SPENT_MARGIN_MS). A retry of the same event finds its own nonce and passes again (idempotent).
A device that sends no token (legacy static code) is accepted only where the site's policy allows it
(`member_qr_site_policy`, default off). Every refusal is kept in `member_qr_refusals` for operators
(`joyedge-cloud member qr-refusals`) and logged. The three tables belong to this module; they are made by the
cloud's schema migrations (storage/schema.py, migration 6), like every other table.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import grpc

from api import member_qr as token_format
from api.v1 import member_qr_pb2, member_qr_pb2_grpc
from cloud_stub.errors import CloudError, InvalidRequestError
from cloud_stub.storage import Storage, now_ms

log = logging.getLogger(__name__)

#: What the mini-program asks for: a token it shows for ~30 s, valid a little longer for a slow scan.
DEFAULT_TTL_S = 90
KEY_SUFFIX = ".ed25519"
#: Longest time from the scan of the code to the template's capture (consent, liveness, retries). The
#: device ends a session after 10 min (device/mirror/enrollment.ENROLL_SESSION_MAX_S); this is looser.
ENROLL_SESSION_MAX_MS = 15 * 60_000
#: How long an enrollment may wait in an offline device's outbox: older captures are refused (and with
#: them any attempt to pass an old photographed code off as freshly scanned long ago).
ENROLL_MAX_DELAY_MS = 7 * 24 * 3_600_000
#: How far a (skew-corrected) capture time may lie after the push's arrival.
ENROLL_FUTURE_SLACK_MS = 5 * 60_000
#: Spent nonces are kept this much longer than any event carrying them could still be accepted.
SPENT_MARGIN_MS = 3_600_000
REFUSAL_KIND = "enrollment_refused"

_SAFE_SITE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def key_dir_for(db_path: str | os.PathLike[str]) -> Path:
    """Where the member-QR keys of the cloud with database `db_path` live."""
    p = Path(db_path)
    return p.with_name(p.name + ".memberqr")


class MemberQrKeys:
    """The per-site member-QR signing keys in one directory."""

    def __init__(self, key_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(key_dir)

    def _stem(self, site_id: str) -> str:
        # Site ids are ours, but a file name must never be steered by one: odd ids are hex-encoded.
        return site_id if _SAFE_SITE.match(site_id) else "x-" + site_id.encode("utf-8").hex()

    def _files(self, site_id: str) -> list[Path]:
        stem = self._stem(site_id)
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir()
                      if p.name == stem + KEY_SUFFIX or (p.name.startswith(stem + ".") and p.name.endswith(KEY_SUFFIX)
                                                         and p.name.count(".") == 2))

    def signing_key(self, site_id: str) -> Any:
        """The site's current signing key (`<site>.ed25519`), created (0600) when it does not exist yet."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        path = self.dir / (self._stem(site_id) + KEY_SUFFIX)
        if not path.exists():
            self._create(path)
        try:
            raw = path.read_bytes()
            return Ed25519PrivateKey.from_private_bytes(raw)
        except (OSError, ValueError) as err:
            raise CloudError(f"member-QR key {path} is unreadable or damaged: {err}") from err

    def _create(self, path: Path) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_bytes(32))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic and never overwrites: two processes racing keep one key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        except OSError as err:
            raise CloudError(f"cannot create member-QR key {path}: {err.strerror or err}") from err

    def public_keys(self, site_id: str) -> list[tuple[bytes, bytes, bool]]:
        """(key id, raw public key, is the signing key) of every key of the site; creates the first."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        signing = self.signing_key(site_id)
        signing_pub = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        out = [(token_format.key_id(signing_pub), signing_pub, True)]
        for path in self._files(site_id):
            try:
                pub = Ed25519PrivateKey.from_private_bytes(path.read_bytes()).public_key().public_bytes(
                    Encoding.Raw, PublicFormat.Raw)
            except (OSError, ValueError) as err:
                log.error("member-QR key %s skipped: %s", path, err)
                continue
            if pub != signing_pub:
                out.append((token_format.key_id(pub), pub, False))
        return out

    def mint(self, storage: Storage, member_id: str, *, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
        """A signed QR token for `member_id` (who must exist) at the member's site, valid `ttl_s` seconds."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        if not 0 < ttl_s <= token_format.MAX_TTL_S:
            raise InvalidRequestError(f"--ttl must be 1-{token_format.MAX_TTL_S} s (devices refuse longer), got {ttl_s}")
        member = storage.get_member(member_id)  # NotFoundError for an unknown member
        site_id = str(member["site_id"])
        key = self.signing_key(site_id)
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        token = token_format.MemberToken(
            member_id=member_id, site_id=site_id, issued_at=int(time.time() if now is None else now), ttl_s=ttl_s,
            nonce=secrets.token_bytes(token_format.NONCE_BYTES), key_id=token_format.key_id(pub))
        try:
            return token_format.encode(token, key.sign)
        except ValueError as err:
            raise InvalidRequestError(f"cannot mint a member QR for {member_id!r}: {err}") from err


class MemberQrServicer(member_qr_pb2_grpc.MemberQrServicer):
    """`MemberQr/GetKeys`: a device gets the public keys of its own site only."""

    def __init__(self, keys: MemberQrKeys) -> None:
        self._keys = keys

    def GetKeys(self, request: member_qr_pb2.GetMemberQrKeysRequest,
                context: grpc.ServicerContext) -> member_qr_pb2.MemberQrKeySet:
        from cloud_stub.auth import require_device

        ident = require_device(context, site_id=request.site_id or None)
        site_id = ident.site_id if ident is not None else request.site_id  # None: insecure loopback server
        if not site_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "site_id is required")
        try:
            keys = self._keys.public_keys(site_id)
        except CloudError as err:
            log.error("member-QR keys of %s: %s", site_id, err)
            context.abort(grpc.StatusCode.INTERNAL, "member-QR keys unavailable")
        return member_qr_pb2.MemberQrKeySet(
            site_id=site_id, server_time_ms=int(time.time() * 1000),
            keys=[member_qr_pb2.MemberQrKey(key_id=k, public_key=p, signing=s) for k, p, s in keys])


def add_member_qr(server: grpc.Server, db_path: str | os.PathLike[str]) -> str:
    """Register `MemberQr` (keys beside the database at `db_path`); returns its full service name."""
    member_qr_pb2_grpc.add_MemberQrServicer_to_server(MemberQrServicer(MemberQrKeys(key_dir_for(db_path))), server)
    return member_qr_pb2.DESCRIPTOR.services_by_name["MemberQr"].full_name


# -- the enrollment re-check -------------------------------------------------------------------------


class EnrollmentRefused(InvalidRequestError):
    """A pushed enrollment whose membership code does not hold; `reason` is a short code for operators."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"enrollment refused ({reason}): {detail}")
        self.reason, self.detail = reason, detail


def _keys_of(storage: Storage) -> MemberQrKeys:
    path = getattr(storage, "path", None)
    if path is None:  # the keys live beside an SQLite database; another backend needs its own key store
        raise CloudError("member-QR keys: this storage has no database path to find them beside")
    return MemberQrKeys(key_dir_for(path))


def set_legacy_policy(storage: Storage, site_id: str, allow: bool) -> None:
    """Allow (or forbid, the default) enrollments without a token — from devices on legacy static codes."""
    with storage.transaction("member-QR site policy") as conn:
        if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (site_id,)).fetchone() is None:
            raise InvalidRequestError(f"unknown site {site_id!r}")
        conn.execute("INSERT INTO member_qr_site_policy (site_id, allow_legacy, changed_at_ms) VALUES (?, ?, ?)"
                     " ON CONFLICT(site_id) DO UPDATE SET allow_legacy = excluded.allow_legacy,"
                     " changed_at_ms = excluded.changed_at_ms", (site_id, int(allow), now_ms()))
    log.warning("member QR: legacy static codes %s for enrollments at site %s",
                "ALLOWED (insecure)" if allow else "refused", site_id)


def legacy_allowed(storage: Storage, site_id: str) -> bool:
    """Whether the site accepts enrollments without a token (default False)."""
    with storage.transaction("member-QR site policy", write=False) as conn:
        row = conn.execute("SELECT allow_legacy FROM member_qr_site_policy WHERE site_id = ?", (site_id,)).fetchone()
    return bool(row[0]) if row is not None else False


def check_enrollment(storage: Storage, *, event_id: str, device_id: str, site_id: str, member_id: str, code: str,
                     scanned_at_ms: int, captured_at_ms: int, received_at_ms: int) -> None:
    """Verify the membership code of a pushed enrollment and spend its nonce for `event_id`.

    `site_id` is the pushing device's (its certificate's); times are in cloud time (skew-corrected).
    Raises EnrollmentRefused; a retry of the same event passes again (its nonce is spent by itself).
    """
    if not code:
        if legacy_allowed(storage, site_id):
            log.warning("member QR: enrollment %s from %s without a token accepted (site %s allows legacy codes)",
                        event_id, device_id, site_id)
            return
        raise EnrollmentRefused("legacy_not_allowed", f"no membership QR token, and site {site_id} does not "
                                "accept legacy static codes")
    if scanned_at_ms <= 0:
        raise EnrollmentRefused("format", "a membership QR token without its scan time")
    if captured_at_ms < received_at_ms - ENROLL_MAX_DELAY_MS:
        raise EnrollmentRefused("too_old", f"captured {(received_at_ms - captured_at_ms) // 3_600_000} h before "
                                f"it arrived (at most {ENROLL_MAX_DELAY_MS // 3_600_000} h)")
    if captured_at_ms > received_at_ms + ENROLL_FUTURE_SLACK_MS:
        raise EnrollmentRefused("future", f"captured {(captured_at_ms - received_at_ms) // 1000} s after it arrived")
    if not 0 <= captured_at_ms - scanned_at_ms <= ENROLL_SESSION_MAX_MS:
        raise EnrollmentRefused("session", f"captured {(captured_at_ms - scanned_at_ms) // 1000} s after the scan "
                                f"(0-{ENROLL_SESSION_MAX_MS // 1000} s)")
    keys = {kid: pub for kid, pub, _ in _keys_of(storage).public_keys(site_id)}
    try:
        token = token_format.verify(code, keys, site_id=site_id, now=scanned_at_ms / 1000)
    except token_format.TokenRejected as err:  # valid at the scan time, not at arrival
        raise EnrollmentRefused(err.reason, str(err)) from err
    if token.member_id != member_id:
        raise EnrollmentRefused("other_member", "the membership QR names another member")
    until = (token.expires_at + token_format.CLOCK_SKEW_S) * 1000 + ENROLL_MAX_DELAY_MS + SPENT_MARGIN_MS
    with storage.transaction("spend member-QR nonce") as conn:
        conn.execute("DELETE FROM member_qr_spent WHERE until_ms < ?", (received_at_ms,))
        row = conn.execute("SELECT event_id, device_id FROM member_qr_spent WHERE key_id = ? AND nonce = ?",
                           (token.key_id, token.nonce)).fetchone()
        if row is None:
            conn.execute("INSERT INTO member_qr_spent (key_id, nonce, event_id, device_id, member_id, spent_at_ms,"
                         " until_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (token.key_id, token.nonce, event_id, device_id, member_id, received_at_ms, until))
        elif row[0] != event_id:
            raise EnrollmentRefused("replayed", f"the membership QR was already used for an enrollment "
                                    f"(by {'this device' if row[1] == device_id else 'device ' + str(row[1])})")


def record_refusal(storage: Storage, refused: EnrollmentRefused, *, event_id: str, device_id: str, site_id: str,
                   member_id: str, occurred_at_ms: int) -> dict[str, Any]:
    """Keep a refusal for operators and make the device's compensation (the same one on every retry)."""
    comp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"joyedge:enrollment-refused:{event_id}"))
    now = now_ms()
    comp = {"event_id": comp_id, "kind": REFUSAL_KIND, "device_id": device_id, "coupon_id": "", "redemption_id": "",
            "member_id": member_id, "amount_cents": 0, "created_at_ms": now,
            "message": f"刷脸开通未生效：会员码校验未通过（{refused.reason}），请会员重新扫码开通 / "
                       f"Face enrollment refused by the cloud ({refused.reason}); the member must enroll again"}
    with storage.transaction("record refused enrollment") as conn:
        conn.execute("INSERT OR IGNORE INTO member_qr_refusals (event_id, device_id, site_id, member_id, reason,"
                     " detail, occurred_at_ms, received_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (event_id, device_id, site_id, member_id, refused.reason, refused.detail[:500],
                      occurred_at_ms, now))
        conn.execute("INSERT OR IGNORE INTO compensations (event_id, kind, device_id, coupon_id, redemption_id,"
                     " member_id, amount_cents, message, created_at_ms) VALUES (:event_id, :kind, :device_id,"
                     " :coupon_id, :redemption_id, :member_id, :amount_cents, :message, :created_at_ms)", comp)
        row = conn.execute("SELECT * FROM compensations WHERE event_id = ?", (comp_id,)).fetchone()
    log.warning("member QR: enrollment %s of member %s from device %s (site %s) refused: %s",
                event_id, member_id, device_id, site_id, refused)
    return dict(row)


def refusals(storage: Storage, *, site_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest refused enrollments (newest first), for operators."""
    with storage.transaction("list refused enrollments", write=False) as conn:
        where, args = ("WHERE site_id = ?", [site_id]) if site_id else ("", [])
        rows = conn.execute(f"SELECT * FROM member_qr_refusals {where} ORDER BY received_at_ms DESC, event_id"
                            " LIMIT ?", [*args, limit]).fetchall()
    return [dict(r) for r in rows]

"""The dynamic membership QR: the contract between the cloud that signs it and the devices that verify it.

The 悦云 mini-program shows a QR that changes every ~30 s. Its text is one compact signed token::

    JM1.<base64url, no padding, of: body || signature>

    body (big-endian)  version u8 (=1) | key id 8 bytes | issued-at u32 (unix s) | ttl u16 (s)
                       | nonce 12 bytes | site id: len u8 + UTF-8 | member id: len u8 + UTF-8
    signature          64-byte Ed25519 over DOMAIN || body, by the site's member-QR key

Binary, not JSON: ~160 characters, so the QR stays small (version 9) and a mirror camera reads it
from a phone at arm's length. The key id is the first 8 bytes of SHA-256 of the raw 32-byte public
key, so a site can publish a new key beside the old one and devices pick the right one. DOMAIN
separates these signatures from anything else the key might ever sign.

`verify` checks format, site, key, signature, lifetime (≤ MAX_TTL_S) and expiry with CLOCK_SKEW_S of
slack; single use (the nonce) is the verifier's own memory (device-local, see device/mirror/member_qr.py).
Every refusal is a `TokenRejected` whose `reason` is one of REASONS; its message never contains the
token's contents (member id, nonce), so it can be logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PREFIX = "JM1."
VERSION = 1
DOMAIN = b"joyedge/member-qr/v1\x00"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
#: The longest lifetime a device accepts, whatever the token says (the mini-program refreshes every ~30 s).
MAX_TTL_S = 120
#: Slack for a device clock that is a little off (NTP on a mall LAN is usually far better than this).
CLOCK_SKEW_S = 30
MAX_ID_BYTES = 64
_HEAD = struct.Struct(">B8sIH12s")
MAX_TOKEN_CHARS = len(PREFIX) + 4 * ((_HEAD.size + 2 + 2 * MAX_ID_BYTES + SIGNATURE_BYTES + 2) // 3)

#: Why a token was refused.
REASONS = ("format", "site", "unknown_key", "signature", "ttl", "expired", "not_yet_valid", "replayed")


class TokenRejected(ValueError):
    """The token is not acceptable; `reason` (one of REASONS) says why. The message is safe to log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MemberToken:
    """What a verified (or merely decoded) token says."""

    member_id: str
    site_id: str
    issued_at: int
    ttl_s: int
    nonce: bytes
    key_id: bytes

    @property
    def expires_at(self) -> int:
        """Unix seconds after which the token is expired (before the clock-skew slack)."""
        return self.issued_at + self.ttl_s


def key_id(public_key: bytes) -> bytes:
    """The 8-byte id of a raw Ed25519 public key."""
    return hashlib.sha256(public_key).digest()[:KEY_ID_BYTES]


def _check_id(what: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    if not 0 < len(raw) <= MAX_ID_BYTES or not value.isprintable():
        raise ValueError(f"{what} must be 1-{MAX_ID_BYTES} printable bytes, got {len(raw)}")
    return raw


def encode(token: MemberToken, sign: Callable[[bytes], bytes]) -> str:
    """The QR text of `token`, signed by `sign(message) -> 64-byte signature` (the cloud's key)."""
    if not (0 < token.ttl_s <= 0xFFFF and 0 <= token.issued_at <= 0xFFFFFFFF):
        raise ValueError("ttl_s or issued_at out of range")
    if len(token.nonce) != NONCE_BYTES or len(token.key_id) != KEY_ID_BYTES:
        raise ValueError(f"nonce must be {NONCE_BYTES} bytes and key id {KEY_ID_BYTES}")
    site, member = _check_id("site id", token.site_id), _check_id("member id", token.member_id)
    body = (_HEAD.pack(VERSION, token.key_id, token.issued_at, token.ttl_s, token.nonce)
            + bytes([len(site)]) + site + bytes([len(member)]) + member)
    signature = sign(DOMAIN + body)
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes, got {len(signature)}")
    return PREFIX + base64.urlsafe_b64encode(body + signature).rstrip(b"=").decode("ascii")


def looks_like_token(code: str) -> bool:
    """True when `code` claims to be a dynamic member QR (it may still be invalid)."""
    return code.strip().startswith(PREFIX)


def decode(code: str) -> tuple[MemberToken, bytes, bytes]:
    """Parse without verifying: (token, signed message, signature). TokenRejected("format") otherwise."""
    text = code.strip()
    if not text.startswith(PREFIX) or len(text) > MAX_TOKEN_CHARS:
        raise TokenRejected("format", "not a member QR token (prefix or length)")
    payload = text[len(PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError) as err:
        raise TokenRejected("format", "member QR token is not base64url") from err
    if len(raw) < _HEAD.size + 2 + SIGNATURE_BYTES:
        raise TokenRejected("format", f"member QR token truncated ({len(raw)} bytes)")
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    version, kid, issued_at, ttl_s, nonce = _HEAD.unpack_from(body)
    if version != VERSION:
        raise TokenRejected("format", f"member QR token version {version} (this device reads {VERSION})")
    pos = _HEAD.size
    fields: list[str] = []
    for what in ("site id", "member id"):
        if pos >= len(body):
            raise TokenRejected("format", f"member QR token truncated before the {what}")
        n = body[pos]
        chunk = body[pos + 1:pos + 1 + n]
        if n == 0 or n > MAX_ID_BYTES or len(chunk) != n:
            raise TokenRejected("format", f"member QR token has a bad {what} length")
        try:
            value = chunk.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TokenRejected("format", f"member QR token {what} is not UTF-8") from err
        if not value.isprintable():
            raise TokenRejected("format", f"member QR token {what} has control characters")
        fields.append(value)
        pos += 1 + n
    if pos != len(body):
        raise TokenRejected("format", "member QR token has trailing bytes")
    token = MemberToken(member_id=fields[1], site_id=fields[0], issued_at=issued_at, ttl_s=ttl_s,
                        nonce=nonce, key_id=kid)
    return token, DOMAIN + body, signature


def verify(code: str, public_keys: Mapping[bytes, bytes], *, site_id: str, now: float,
           max_ttl_s: int = MAX_TTL_S, skew_s: int = CLOCK_SKEW_S) -> MemberToken:
    """The token in `code` if it is valid for `site_id` at `now` (unix seconds); TokenRejected otherwise.

    `public_keys` maps key id → raw Ed25519 public key of this site's member-QR keys. Checks, in order:
    format, site (a token of another mall says so, even unverified: the message only guides the shopper),
    known key, signature, lifetime ≤ max_ttl_s, not issued in the future, not expired (both ± skew_s).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    token, message, signature = decode(code)
    if token.site_id != site_id:
        raise TokenRejected("site", "member QR of another site")
    public = public_keys.get(token.key_id)
    if public is None:
        raise TokenRejected("unknown_key", f"member QR signed by unknown key {token.key_id.hex()}")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError) as err:
        raise TokenRejected("signature", f"member QR signature invalid (key {token.key_id.hex()})") from err
    if token.ttl_s > max_ttl_s:
        raise TokenRejected("ttl", f"member QR lifetime {token.ttl_s} s exceeds {max_ttl_s} s")
    if token.issued_at > now + skew_s:
        raise TokenRejected("not_yet_valid", f"member QR issued {token.issued_at - now:.0f} s in the future")
    if now > token.expires_at + skew_s:
        raise TokenRejected("expired", f"member QR expired {now - token.expires_at:.0f} s ago")
    return token

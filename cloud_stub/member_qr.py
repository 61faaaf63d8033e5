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
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import grpc

from api import member_qr as token_format
from api.v1 import member_qr_pb2, member_qr_pb2_grpc
from cloud_stub.errors import CloudError, InvalidRequestError
from cloud_stub.storage import Storage

log = logging.getLogger(__name__)

#: What the mini-program asks for: a token it shows for ~30 s, valid a little longer for a slow scan.
DEFAULT_TTL_S = 90
KEY_SUFFIX = ".ed25519"
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

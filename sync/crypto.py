"""Face templates encrypted at rest: AES-256-GCM per row under a data key.

The data key is random and stored only wrapped (AES-GCM) by the device's identity key. Both live
in the identity directory with 0600 permissions. `KeyProvider` is the seam where a TPM or secure
element takes over the identity key later; `FileKeyProvider` is today's file-backed one.
Destroying the wrapped data key (factory reset) makes every stored template unreadable:
crypto-erase, without having to trust that every copy of every row was overwritten.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.pki import write_private
from sync.errors import KeyError_

NONCE_BYTES = 12
_WRAP_AAD = b"joyedge/data-key/v1"


class KeyProvider(ABC):
    """Holds the device identity key and wraps/unwraps the data key with it."""

    @abstractmethod
    def wrap(self, data_key: bytes) -> bytes:
        """Encrypt the data key for storage."""

    @abstractmethod
    def unwrap(self, blob: bytes) -> bytes:
        """Recover the data key; raises KeyError_ when the blob is not ours."""


class FileKeyProvider(KeyProvider):
    """Identity key in `<dir>/identity.key` (0600), created on first use."""

    def __init__(self, identity_dir: Path) -> None:
        self.path = identity_dir / "identity.key"

    def _key(self) -> bytes:
        if not self.path.exists():
            write_private(self.path, AESGCM.generate_key(bit_length=256))
        key = self.path.read_bytes()
        if len(key) != 32:
            raise KeyError_(f"identity key {self.path} is damaged ({len(key)} bytes, expected 32)")
        return key

    def wrap(self, data_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key()).encrypt(nonce, data_key, _WRAP_AAD)

    def unwrap(self, blob: bytes) -> bytes:
        try:
            return AESGCM(self._key()).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _WRAP_AAD)
        except InvalidTag as err:
            raise KeyError_("the data key was not wrapped by this device's identity key") from err


class TemplateCipher:
    """Encrypts template vectors per row; the row id is bound in as associated data."""

    def __init__(self, identity_dir: Path, provider: KeyProvider | None = None) -> None:
        self.wrapped_path = identity_dir / "data.key.wrapped"
        self.provider = provider or FileKeyProvider(identity_dir)
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        if self._aead is None:
            if not self.wrapped_path.exists():
                write_private(self.wrapped_path, self.provider.wrap(AESGCM.generate_key(bit_length=256)))
            self._aead = AESGCM(self.provider.unwrap(self.wrapped_path.read_bytes()))
        return self._aead

    def encrypt(self, row_id: str, plaintext: bytes) -> bytes:
        """nonce || ciphertext+tag for one template row."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._cipher().encrypt(nonce, plaintext, row_id.encode())

    def encrypt_many(self, row_ids: Sequence[str], plaintexts: Sequence[bytes]) -> list[bytes]:
        """`encrypt` of each (row id, plaintext) pair (a bulk load: one key lookup, one nonce read)."""
        aead = self._cipher()
        nonces = os.urandom(NONCE_BYTES * len(row_ids))
        out = []
        for i, (row_id, plaintext) in enumerate(zip(row_ids, plaintexts, strict=True)):
            nonce = nonces[i * NONCE_BYTES:(i + 1) * NONCE_BYTES]
            out.append(nonce + aead.encrypt(nonce, plaintext, row_id.encode()))
        return out

    def decrypt(self, row_id: str, blob: bytes) -> bytes:
        """The plaintext vector bytes; KeyError_ if the row was not sealed under this data key."""
        try:
            return self._cipher().decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], row_id.encode())
        except InvalidTag as err:
            raise KeyError_(f"template {row_id} cannot be decrypted with this device's data key") from err

    def destroy(self) -> None:
        """Crypto-erase: forget the data key so every sealed template becomes noise."""
        self._aead = None
        self.wrapped_path.unlink(missing_ok=True)

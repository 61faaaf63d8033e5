"""Face templates at rest: AES-256-GCM sealing of template vectors, and the key file it uses.

A template vector (float32 little-endian bytes) is never stored in plaintext: it is sealed with
AES-256-GCM under a data key kept in a file next to the database, `<db>.key` (32 random bytes,
mode 0600, created on first use). Each blob is `nonce (12 bytes) || ciphertext+tag`, and the
template id and member id are bound as associated data, so a blob copied onto another row does
not decrypt. Vectors are decrypted only when served. A production cloud would keep the key in a
KMS/HSM and rotate it; the file key keeps the reference cloud self-contained.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud_stub.errors import StorageError

_NONCE_BYTES = 12
_KEY_BYTES = 32


class TemplateSealer:
    """Seals and opens template blobs under the key in `key_path`, read or created on first use.

    Nothing touches the key file until the first `seal`/`unseal`; one instance is thread-safe.
    """

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._aead: AESGCM | None = None
        self._key_lock = threading.Lock()

    def _cipher(self) -> AESGCM:
        with self._key_lock:
            if self._aead is None:
                self._aead = AESGCM(self._load_or_create_key())
            return self._aead

    def _load_or_create_key(self) -> bytes:
        try:
            fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as err:
            raise StorageError(f"cannot create template key {self.key_path}: {err}") from err
        else:
            key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            return key
        try:
            key = self.key_path.read_bytes()
        except OSError as err:
            raise StorageError(f"cannot read template key {self.key_path}: {err}") from err
        if len(key) != _KEY_BYTES:
            raise StorageError(
                f"template key {self.key_path} is {len(key)} bytes, expected {_KEY_BYTES}: "
                "it is damaged or was being written; restore it from backup"
            )
        return key

    @staticmethod
    def _aad(template_id: str, member_id: str) -> bytes:
        return f"joyedge-template:{template_id}:{member_id}".encode()

    def seal(self, template_id: str, member_id: str, plaintext: bytes) -> bytes:
        """`nonce || ciphertext+tag` of `plaintext`, bound to this template and member."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._cipher().encrypt(nonce, plaintext, self._aad(template_id, member_id))

    def unseal(self, template_id: str, member_id: str, blob: bytes) -> bytes:
        """The plaintext of a sealed blob (StorageError on a wrong key or a blob of another row)."""
        try:
            return self._cipher().decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad(template_id, member_id)
            )
        except InvalidTag as err:
            raise StorageError(
                f"template {template_id!r} does not decrypt with {self.key_path}: wrong key or damaged row"
            ) from err

"""Key, CSR and secret-file formats shared by everyone who talks mTLS to the cloud.

The device (`sync/identity.py`), the technician's laptop (`provisioning/admin_client.py`) and the
cloud's CA (`cloud_stub/ca.py`, `cloud_stub/technicians.py`) all make keys, send or read CSRs and keep
private files; this is the one implementation, here because all of them may import `api` and nothing
else in common.

- Keys are EC P-256 (ECDSA-SHA256): what BoringSSL (gRPC) and every TLS stack handle; stored as
  unencrypted PKCS#8 PEM in a private file (the file mode is the protection; a TPM or secure element
  would hold the key instead).
- A CSR is PKCS#10 PEM, signed with SHA-256, whose subject is only a common name (≤ 64 characters,
  the X.520 upper bound). The cloud takes nothing from it but the public key, proven by the signature:
  the identity in a certificate is the cloud's (claim token, login token), never the requester's.
- A key and a certificate belong together when their DER SubjectPublicKeyInfo bytes are equal.
- `write_private` writes a file atomically and durably: temp file created with its final mode (a secret is
  never readable by others, not even briefly), fsync, rename, fsync of the directory (the rename itself
  must survive power loss).

`cryptography` is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Longest common name put into a CSR subject (X.520 ub-common-name).
MAX_COMMON_NAME = 64


def new_key() -> Any:
    """A new EC P-256 private key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Any) -> bytes:
    """`key` as unencrypted PKCS#8 PEM (for a 0600 file)."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def build_csr(key: Any, common_name: str) -> str:
    """A PKCS#10 request (PEM) signed by `key` with SHA-256, subject CN = `common_name` (cut to 64)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:MAX_COMMON_NAME])]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def spki_der(public_key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key (what binds a certificate to its key)."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_key(cert: Any, key: Any) -> bool:
    """Whether certificate `cert` is for private key `key`."""
    return spki_der(cert.public_key()) == spki_der(key.public_key())


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` atomically with `mode` (0600 by default), durable across power loss.

    The parent folder is created 0700 when missing. A crash leaves either the old file or the new one
    (and at worst a `<name>.tmp` beside it, replaced by the next write). OSError is the caller's to
    translate.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

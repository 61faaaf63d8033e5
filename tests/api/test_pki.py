"""api/pki.py: the key, CSR and private-file formats shared by device, joyprov and the cloud's CA."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api import pki
from cloud_stub import ca


def test_new_key_is_p256_and_its_pem_is_unencrypted_pkcs8() -> None:
    key = pki.new_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    pem = pki.key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not "EC PRIVATE KEY" / "ENCRYPTED"
    back = serialization.load_pem_private_key(pem, password=None)
    assert pki.spki_der(back.public_key()) == pki.spki_der(key.public_key())


def test_csr_carries_only_a_cut_common_name_and_a_sha256_signature() -> None:
    key = pki.new_key()
    csr = x509.load_pem_x509_csr(pki.build_csr(key, "d" * 70).encode())
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert [a.oid for a in csr.subject] == [NameOID.COMMON_NAME]
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "d" * 64
    assert list(csr.extensions) == []
    assert pki.spki_der(csr.public_key()) == pki.spki_der(key.public_key())


def test_the_cloud_ca_signs_the_csr_and_the_certificate_pairs_with_its_key_only(tmp_path: Path) -> None:
    """GIVEN a real reference-cloud CA WHEN it signs a CSR built here THEN the certificate is for that key."""
    ca.init_ca(tmp_path / "ca")
    key, other = pki.new_key(), pki.new_key()
    cert = ca.CertificateAuthority(tmp_path / "ca").sign_csr(pki.build_csr(key, "mirror-1"), site_id="s1",
                                                            store_id="s1-a", device_id="mirror-1")
    assert pki.same_key(cert, key)
    assert not pki.same_key(cert, other)


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_write_private_replaces_atomically_with_its_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "new" / "dir" / "secret.key"
    pki.write_private(path, b"first", mode)
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o666)  # an old file's looser mode does not survive a rewrite: it is a new inode
    pki.write_private(path, b"second" * 100_000, mode)
    assert path.read_bytes() == b"second" * 100_000
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]  # no temp file left


def test_write_private_leaves_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    pki.write_private(path, b"old")
    (tmp_path / "secret.key.tmp").mkdir()  # the temp file cannot be opened
    with pytest.raises(OSError):
        pki.write_private(path, b"new")
    assert path.read_bytes() == b"old"

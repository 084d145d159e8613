from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from egress_proxy.ca import ensure_ca


def test_creates_private_key_and_certificates(tmp_path: Path) -> None:
    files = ensure_ca(tmp_path / "ca")
    assert stat.S_IMODE(files.key_and_cert.stat().st_mode) == 0o600
    pem = files.key_and_cert.read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert files.cert.read_bytes() == files.sandbox_cert.read_bytes() == cert.public_bytes(serialization.Encoding.PEM)
    assert b"PRIVATE KEY" not in files.sandbox_cert.read_bytes()
    assert sorted(p.name for p in files.directory.iterdir()) == ["ca.crt", "mitmproxy-ca-cert.pem", "mitmproxy-ca.pem"]


def test_certificate_is_a_ca_that_may_only_sign(tmp_path: Path) -> None:
    cert = x509.load_pem_x509_certificate(ensure_ca(tmp_path).cert.read_bytes())
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.key_encipherment
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)


def test_second_call_reuses_the_key_and_restores_missing_files(tmp_path: Path) -> None:
    first = ensure_ca(tmp_path)
    key_pem = first.key_and_cert.read_bytes()
    first.sandbox_cert.unlink()
    second = ensure_ca(tmp_path)
    assert second.key_and_cert.read_bytes() == key_pem
    assert second.sandbox_cert.read_bytes() == first.cert.read_bytes()

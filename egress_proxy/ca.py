"""The certificate authority the proxy signs sandbox-facing certificates with.

Created once (sandboxd calls :func:`ensure_ca` at first start) and reused for
the life of the data directory, so sandboxes created earlier keep trusting
the proxy. Files, all written atomically (temp file, fsync, rename):

- ``mitmproxy-ca.pem``: private key + certificate, mode 0600; what mitmproxy
  reads from its ``confdir`` (pass ``--set confdir=<directory>``);
- ``mitmproxy-ca-cert.pem``: the certificate alone, the name mitmproxy uses;
- ``ca.crt``: the same certificate, the file installed into sandboxes.

The key is RSA 2048 because mitmproxy also uses the CA key as the key of the
leaf certificates it forges, and RSA is what every client accepts.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_AND_CERT = "mitmproxy-ca.pem"
CERT = "mitmproxy-ca-cert.pem"
SANDBOX_CERT = "ca.crt"
_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class CAFiles:
    directory: Path
    key_and_cert: Path
    """Private key and certificate (0600); mitmproxy's confdir file."""
    cert: Path
    """The certificate, under mitmproxy's name for it."""
    sandbox_cert: Path
    """The certificate to install in sandboxes' trust stores."""


def ensure_ca(directory: str | os.PathLike[str], common_name: str = "sandboxd egress CA") -> CAFiles:
    """Return the CA files in ``directory``, creating the key and certificate if they are absent.

    An existing key is never replaced; the certificate files derived from it are
    rewritten if missing, so a half-finished first start completes on the next.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    files = CAFiles(root, root / KEY_AND_CERT, root / CERT, root / SANDBOX_CERT)
    if files.key_and_cert.exists():
        certificate = x509.load_pem_x509_certificate(files.key_and_cert.read_bytes())
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    else:
        key, certificate = _new_ca(common_name)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        _write_atomic(files.key_and_cert, key_pem + cert_pem, 0o600)
    for path in (files.cert, files.sandbox_cert):
        if not path.exists() or path.read_bytes() != cert_pem:
            _write_atomic(path, cert_pem, 0o644)
    return files


def _new_ca(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sandboxd")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # Backdated a little so a sandbox whose clock lags still accepts it.
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

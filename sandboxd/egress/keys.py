"""Key files and the AES-GCM box that seals secret values at rest.

Two keys live in the data directory, each exactly 32 random bytes, mode 0600:
``secrets.key`` seals secret values in the database and never leaves sandboxd;
``egress/state.key`` encrypts the proxy's state file and is the one thing the
proxy must share with sandboxd. Keeping them apart means a proxy host (docker
compose mounts the egress directory into the proxy container) never holds the
key to the database.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandboxd.errors import SandboxdError

KEY_BYTES = 32
_NONCE_BYTES = 12


def ensure_key_file(path: Path) -> bytes:
    """The key in ``path``, created first if absent.

    Creation is atomic and never replaces a key: the bytes go to a private temp
    file that is then hard-linked into place, which fails if another process won
    the race, in which case its key is the one returned.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise SandboxdError(f"the key file {path} must hold exactly {KEY_BYTES} bytes; it holds {len(key)}")
    return key


class SecretBox:
    """Seals a secret value to the tenant and name it was stored under.

    The tenant and name are the associated data, so a sealed value copied into
    another tenant's row (or another name) does not open.
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, tenant_id: str, name: str, value: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, value.encode(), _aad(tenant_id, name))

    def open(self, tenant_id: str, name: str, sealed: bytes) -> str:
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(tenant_id, name))
        except (InvalidTag, ValueError):
            raise SandboxdError(f"secret {name} does not decrypt with this daemon's secrets.key") from None
        return plain.decode()


def _aad(tenant_id: str, name: str) -> bytes:
    return b"sandboxd secret v1\x00" + tenant_id.encode() + b"\x00" + name.encode()

"""What a sandbox is given so that ordinary tools use the egress proxy, and trust it.

Proxy variables in both spellings (curl, pip, git, requests and httpx read the
lower-case ones, many others the upper-case), npm's own settings, and the CA
variables of each toolchain that does not read the system store.

The CA goes in as two files placed before the container starts: the
certificate in the Debian local-certificates directory (where a later
``update-ca-certificates`` picks it up) and, as the system bundle, a bundle of
our CA alone. The image's own bundle is not worth keeping: a sandbox has no
route out, so every TLS connection it can make goes through the proxy, whose
certificates our CA signs; any other trust anchor could only ever vouch for a
connection that cannot happen. Writing our CA alone also spares an engine round
trip per container to read the image's bundle first.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

CA_CERT_PATH = "/usr/local/share/ca-certificates/sandboxd.crt"
CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"
# Inside the sandbox these stay direct: the sandbox's own services.
NO_PROXY = "localhost,127.0.0.1"
PLACEHOLDER_PREFIX = "sandboxd-ph-"

_PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_CA_NAMES = (
    "SSL_CERT_FILE",  # OpenSSL, Python's ssl, httpx
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "PIP_CERT",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_cafile",
)


def proxy_env(proxy_url: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in _PROXY_NAMES:
        env[name] = env[name.lower()] = proxy_url
    env["NO_PROXY"] = env["no_proxy"] = NO_PROXY
    env["npm_config_proxy"] = env["npm_config_https_proxy"] = proxy_url
    # Node 24+ makes its built-in fetch and http use the proxy variables only when asked to.
    env["NODE_USE_ENV_PROXY"] = "1"
    return env


def ca_env() -> dict[str, str]:
    return {name: CA_BUNDLE_PATH for name in _CA_NAMES}


def reserved_names() -> frozenset[str]:
    """Variables sandboxd sets itself; a secret may not be named like one."""
    return frozenset(proxy_env("http://x") | ca_env())


def sandbox_env(proxy_url: str, placeholders: Mapping[str, str]) -> dict[str, str]:
    """Everything egress adds to a sandbox's environment: proxy, CA and one placeholder per secret."""
    return {**proxy_env(proxy_url), **ca_env(), **placeholders}


def ca_files(ca_pem: bytes) -> dict[str, tuple[bytes, int]]:
    return {CA_CERT_PATH: (ca_pem, 0o644), CA_BUNDLE_PATH: (ca_pem, 0o644)}


def new_placeholder() -> str:
    """A token that stands for a secret inside one sandbox; 144 random bits, URL-safe."""
    return PLACEHOLDER_PREFIX + secrets.token_urlsafe(18)

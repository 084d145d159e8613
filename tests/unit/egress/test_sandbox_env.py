"""What a sandbox is given to find and trust the proxy."""

from __future__ import annotations

import re

from sandboxd.egress.sandbox_env import (
    CA_BUNDLE_PATH,
    CA_CERT_PATH,
    ca_files,
    new_placeholder,
    reserved_names,
    sandbox_env,
)

PROXY = "http://172.30.0.1:3128"


def test_proxy_variables_in_both_spellings_and_npms_own() -> None:
    env = sandbox_env(PROXY, {})
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "npm_config_proxy", "npm_config_https_proxy"):
        assert env[name] == PROXY
        if name.isupper():
            assert env[name.lower()] == PROXY
    assert env["NO_PROXY"] == env["no_proxy"] == "localhost,127.0.0.1"


def test_every_toolchain_is_pointed_at_the_bundle() -> None:
    env = sandbox_env(PROXY, {})
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PIP_CERT", "GIT_SSL_CAINFO"):
        assert env[name] == CA_BUNDLE_PATH


def test_placeholders_join_the_environment_and_cannot_shadow_ours() -> None:
    env = sandbox_env(PROXY, {"GITHUB_TOKEN": "sandboxd-ph-abc"})
    assert env["GITHUB_TOKEN"] == "sandboxd-ph-abc"
    assert "HTTPS_PROXY" in reserved_names() and "GITHUB_TOKEN" not in reserved_names()


def test_ca_goes_to_the_local_store_and_as_the_whole_bundle() -> None:
    files = ca_files(b"-----BEGIN CERTIFICATE-----\n")
    assert files == {
        CA_CERT_PATH: (b"-----BEGIN CERTIFICATE-----\n", 0o644),
        CA_BUNDLE_PATH: (b"-----BEGIN CERTIFICATE-----\n", 0o644),
    }


def test_placeholders_are_random_and_the_shape_the_proxy_accepts() -> None:
    made = {new_placeholder() for _ in range(200)}
    assert len(made) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9._~-]{12,200}", p) for p in made)

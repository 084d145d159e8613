"""Ordinary tools find their way out through the proxy: pip, git, curl, Python."""

from __future__ import annotations

import httpx

from tests.integration.egress.conftest import Shell, allow, wait_for_log
from tests.integration.egress.upstream import Upstream

PYPI = ("pypi.org", "files.pythonhosted.org")
# A small, pure-Python package that has been on PyPI for a long time.
PACKAGE = "six"


def test_pip_installs_through_the_proxy_when_the_index_is_allowed(
    api: httpx.Client, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow(*PYPI))["id"]
    installed = sh(sid, f"pip install --no-cache-dir --retries 0 --timeout 30 {PACKAGE} && python3 -c 'import six; print(six.__name__)'")
    assert installed["exit_code"] == 0, installed
    assert installed["stdout"].rstrip().endswith("six"), installed
    records = wait_for_log(api, sid, lambda r: {x["host"] for x in r} >= set(PYPI))
    fetched = [r for r in records if r["host"] == "files.pythonhosted.org" and r["status"] == 200]
    assert fetched and fetched[0]["bytes_in"] > 1000 and not fetched[0]["blocked"]


def test_pip_fails_with_the_proxys_reason_when_the_index_is_not_allowed(
    api: httpx.Client, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow("example.com"))["id"]
    # pip names the reason of a failed attempt in its retry warning, so allow it one retry.
    refused = sh(sid, f"pip install --no-cache-dir --retries 1 --timeout 30 {PACKAGE}")
    assert refused["exit_code"] != 0
    output = refused["stdout"] + refused["stderr"]
    assert "403" in output and "no allow rule matches pypi.org:443" in output, output
    records = wait_for_log(api, sid, lambda r: any(x["host"] == "pypi.org" for x in r))
    assert all(r["blocked"] and r["status"] == 403 for r in records if r["host"] == "pypi.org")


def test_git_curl_and_python_use_the_proxy_and_trust_its_ca(
    upstream: Upstream, make_sandbox, sh: Shell
) -> None:
    sid = make_sandbox(egress=allow(upstream.address))["id"]
    upstream.clear()
    # git asks the site for a repository (which it does not have): the request got there over TLS.
    git = sh(sid, f"git ls-remote {upstream.base}/repo.git")
    assert "not found" in (git["stderr"] + git["stdout"]).lower() or git["exit_code"] != 0, git
    assert any(r.path.startswith("/repo.git/info/refs") for r in upstream.received), upstream.received
    assert "certificate" not in git["stderr"].lower(), git

    python = sh(sid, f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{upstream.base}/ok').read().decode())\"")
    assert python["stdout"] == "ok\n", python
    assert sh(sid, f"curl -sS {upstream.base}/ok")["stdout"] == "ok"
    # The CA a sandbox trusts is sandboxd's alone: a site's own certificate means nothing inside.
    direct_trust = sh(sid, "openssl x509 -noout -subject -in /etc/ssl/certs/ca-certificates.crt")
    assert "sandboxd" in direct_trust["stdout"], direct_trust

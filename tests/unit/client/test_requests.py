"""Request bodies built before any I/O: host specs, partial updates."""

from __future__ import annotations

import pytest

from sandboxd.client import _requests as req
from sandboxd.errors import InvalidRequest


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("api.github.com", ("api.github.com", None)),
        ("pypi.org:443", ("pypi.org", 443)),
        ("*.example.com:8443", ("*.example.com", 8443)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
    ],
)
def test_host_port(spec: str, expected: tuple[str, int | None]) -> None:
    assert req.host_port(spec) == expected


@pytest.mark.parametrize("spec", ["pypi.org:0", "pypi.org:65536", "pypi.org:https", "[::1]x"])
def test_host_port_refuses_bad_ports(spec: str) -> None:
    with pytest.raises(InvalidRequest):
        req.host_port(spec)


def test_lifecycle_body_tells_left_out_from_cleared() -> None:
    assert req.lifecycle_body(idle_timeout_s=req.KEEP, idle_action=None, max_lifetime_s=3600, on_wake=req.KEEP) == {
        "idle_action": None,
        "max_lifetime_s": 3600,
    }
    with pytest.raises(InvalidRequest, match="idle_timeout_s"):
        req.lifecycle_body(idle_timeout_s=-1)

from __future__ import annotations

import pytest

from egress_proxy.addresses import choose_destination, is_ip_literal, refused_range, resolve


@pytest.mark.parametrize(
    ("address", "label"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
    ],
)
def test_non_public_addresses_are_refused_with_their_range(address: str, label: str) -> None:
    assert refused_range(address) == label


@pytest.mark.parametrize("address", ["1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refused_range(address) is None


def test_one_private_answer_refuses_the_whole_name() -> None:
    destination = choose_destination("rebind.example", ["93.184.216.34", "10.0.0.5"], named_explicitly=False)
    assert destination.address is None
    assert destination.refusal is not None
    assert "rebind.example resolves to 10.0.0.5, a private address" in destination.refusal


def test_explicitly_named_host_may_reach_private_addresses() -> None:
    destination = choose_destination("db.internal", ["10.0.0.5"], named_explicitly=True)
    assert destination.address == "10.0.0.5"


def test_ipv4_is_preferred_and_pinned() -> None:
    destination = choose_destination("dual.example", ["2606:4700::1", "93.184.216.34"], named_explicitly=False)
    assert destination.address == "93.184.216.34"


def test_no_addresses_is_a_failure_not_a_block() -> None:
    destination = choose_destination("nothing.example", [], named_explicitly=False)
    assert destination.address is None
    assert destination.status == 502


def test_ip_literal_refusal_does_not_claim_resolution() -> None:
    destination = choose_destination("127.0.0.1", ["127.0.0.1"], named_explicitly=False)
    assert destination.refusal is not None
    assert destination.refusal.startswith("127.0.0.1, a loopback address")


async def test_resolve_ip_literal_and_localhost() -> None:
    assert await resolve("127.0.0.1", 80) == ["127.0.0.1"]
    assert "127.0.0.1" in await resolve("localhost", 80)
    assert is_ip_literal("::1") and not is_ip_literal("localhost")


async def test_resolve_failure_raises_oserror() -> None:
    with pytest.raises(OSError):
        await resolve("does-not-exist.invalid", 80)

"""Addresses go round the subnet, so a freed one comes back only after all the others."""

from __future__ import annotations

import pytest

from sandboxd.egress.addresses import next_address
from sandboxd.errors import RuntimeFailure


def test_starts_after_the_gateway_and_moves_on_from_the_last() -> None:
    assert next_address("10.9.0.0/24", "10.9.0.1", None, set()) == "10.9.0.2"
    assert next_address("10.9.0.0/24", "10.9.0.1", "10.9.0.2", set()) == "10.9.0.3"


def test_a_freed_address_is_not_the_next_one() -> None:
    # 10.9.0.2 was freed a moment ago; the lowest free address would be it, ours is not.
    assert next_address("10.9.0.0/24", "10.9.0.1", "10.9.0.7", {"10.9.0.3"}) == "10.9.0.8"


def test_wraps_round_skipping_what_is_taken() -> None:
    assert next_address("10.9.0.0/29", "10.9.0.1", "10.9.0.6", {"10.9.0.2"}) == "10.9.0.3"


def test_a_full_subnet_is_an_error() -> None:
    taken = {f"10.9.0.{i}" for i in range(2, 7)}
    with pytest.raises(RuntimeFailure, match="in use"):
        next_address("10.9.0.0/29", "10.9.0.1", None, taken)


def test_an_address_from_another_subnet_starts_over() -> None:
    assert next_address("10.9.0.0/24", "10.9.0.1", "172.17.0.9", set()) == "10.9.0.2"

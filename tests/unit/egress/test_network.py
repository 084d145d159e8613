"""The sandbox network's names and the isolation it must have."""

from __future__ import annotations

import pytest

from sandboxd.egress.network import ICC_OPTION, bridge_name, check_isolated, network_name, network_options
from sandboxd.errors import RuntimeFailure
from sandboxd.runtime.base import NetworkInfo


def info(**changes: object) -> NetworkInfo:
    base = dict(id="n1", name="sandboxd-egress-ins_x", internal=True, subnet="172.30.0.0/16", gateway="172.30.0.1",
                options={ICC_OPTION: "false"}, labels={})
    base.update(changes)
    return NetworkInfo(**base)  # type: ignore[arg-type]


def test_bridge_names_fit_linux_and_differ_per_instance() -> None:
    names = {bridge_name(f"ins_{i:020d}") for i in range(100)}
    assert len(names) == 100 and all(len(n) <= 15 and n.startswith("sbxd") for n in names)
    assert bridge_name("ins_a") == bridge_name("ins_a")
    assert network_options("ins_a")["com.docker.network.bridge.name"] == bridge_name("ins_a")
    assert network_name("ins_a") == "sandboxd-egress-ins_a"


def test_an_isolated_network_passes() -> None:
    assert check_isolated(info()) == []


def test_a_network_with_a_way_out_is_refused_even_for_an_external_proxy() -> None:
    with pytest.raises(RuntimeFailure, match="not internal"):
        check_isolated(info(internal=False), icc_allowed=True)


def test_sandboxes_that_can_reach_each_other_are_refused_locally_and_reported_externally() -> None:
    with pytest.raises(RuntimeFailure, match="reach each other"):
        check_isolated(info(options={}))
    assert "reach each other" in check_isolated(info(options={ICC_OPTION: "true"}), icc_allowed=True)[0]

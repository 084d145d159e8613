from __future__ import annotations

from tests.unit.egress_proxy.egress_fakes import (
    SANDBOX_IP,
    Chain,
    make_connect_flow,
    make_request_flow,
    record,
    sandbox,
)


async def test_known_source_address_identifies_the_sandbox(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("http://api.example.com/"))
    assert flow.response is not None and flow.response.status_code == 200
    assert record(flow).sandbox is not None
    assert record(flow).sandbox.sandbox_id == "sbx_test"  # type: ignore[union-attr]
    assert record(flow).client_ip == SANDBOX_IP


async def test_unknown_source_address_is_refused(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("http://api.example.com/", client_ip="10.0.0.99"))
    assert flow.response is not None and flow.response.status_code == 403
    assert record(flow).blocked == "unknown client"
    assert "no sandbox has the source address 10.0.0.99" in flow.response.text


async def test_unknown_source_address_is_refused_on_connect(chain: Chain) -> None:
    flow = await chain.connect(make_connect_flow("api.example.com", client_ip="10.0.0.99"))
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.request.host == "api.example.com", "a refused CONNECT is not pinned anywhere"


async def test_ipv4_mapped_source_address_is_recognized(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("http://api.example.com/", client_ip=f"::ffff:{SANDBOX_IP}"))
    assert flow.response is not None and flow.response.status_code == 200


async def test_invalid_sandbox_entry_explains_itself(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox(rules=[{"action": "allow"}])})
    flow = await chain.run(make_request_flow("http://api.example.com/"))
    assert flow.response is not None and flow.response.status_code == 403
    assert "egress configuration of this sandbox is invalid" in flow.response.text
    assert "rules[0]: host must be" in flow.response.text


async def test_state_is_read_per_request(chain: Chain) -> None:
    chain.set_state(**{"10.0.0.3": sandbox()})
    refused = await chain.run(make_request_flow("http://api.example.com/"))
    assert refused.response is not None and refused.response.status_code == 403
    chain.set_state(**{SANDBOX_IP: sandbox()})
    allowed = await chain.run(make_request_flow("http://api.example.com/"))
    assert allowed.response is not None and allowed.response.status_code == 200

from __future__ import annotations

from mitmproxy.proxy import server_hooks
from mitmproxy.test import tflow

from tests.unit.egress_proxy.egress_fakes import (
    SANDBOX_IP,
    Chain,
    inner_flow,
    make_connect_flow,
    make_request_flow,
    record,
    sandbox,
)


def allow(host: str, **extra: object) -> dict[str, object]:
    return {"action": "allow", "host": host, **extra}


async def test_allowed_plain_request_is_pinned_to_the_checked_address(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("http://api.example.com/x"))
    assert flow.response is not None and flow.response.status_code == 200
    assert flow.request.host == "93.184.216.34"
    assert flow.request.host_header == "api.example.com"
    assert record(flow).host == "api.example.com"


async def test_default_deny_says_so_in_the_403_body(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("https://evil.example/x?token=abc"))
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.text == (
        "sandboxd egress: blocked GET https://evil.example/x: no allow rule matches evil.example:443 "
        "(default deny). Ask the sandbox owner to allow it.\n"
    )


async def test_deny_rule_is_named_in_the_body(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("*.example.com"), {"action": "deny", "host": "other.example.com", "name": "no other"}])})
    flow = await chain.run(make_request_flow("https://other.example.com/"))
    assert flow.response is not None and flow.response.status_code == 403
    assert "rule 'no other' (deny other.example.com)" in flow.response.text


async def test_connect_is_checked_and_pinned(chain: Chain) -> None:
    flow = await chain.connect(make_connect_flow("api.example.com"))
    assert flow.response is None
    assert flow.request.host == "93.184.216.34"
    assert flow.server_conn.sni == "api.example.com"


async def test_refused_connect_gets_403(chain: Chain) -> None:
    flow = await chain.connect(make_connect_flow("evil.example"))
    assert flow.response is not None and flow.response.status_code == 403
    assert "blocked CONNECT evil.example:443: no allow rule matches evil.example:443" in flow.response.text
    # Clients print the status line of a refused tunnel, not its body.
    assert flow.response.reason == "blocked by sandboxd egress: no allow rule matches evil.example:443 (default deny)"


async def test_request_inside_tunnel_is_decided_with_method_and_path(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("api.example.com", methods=["GET"], path_prefix="/v1/")])})
    connect = await chain.connect(make_connect_flow("api.example.com"))
    ok = await chain.run(inner_flow(connect, "/v1/items"))
    assert ok.response is not None and ok.response.status_code == 200
    assert record(ok).host == "api.example.com" and record(ok).scheme == "https"
    refused = await chain.run(inner_flow(connect, "/v1/items", method="DELETE"))
    assert refused.response is not None and refused.response.status_code == 403
    assert "no allow rule for api.example.com:443 matches DELETE /v1/items" in refused.response.text


async def test_domain_fronting_by_host_header_is_refused(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("api.example.com"), allow("other.example.com")])})
    connect = await chain.connect(make_connect_flow("api.example.com"))
    flow = await chain.run(inner_flow(connect, host_header="other.example.com"))
    assert flow.response is not None and flow.response.status_code == 403
    assert "Host header names other.example.com but the tunnel was opened to api.example.com:443" in flow.response.text


async def test_host_header_with_the_tunnel_port_is_fine(chain: Chain) -> None:
    connect = await chain.connect(make_connect_flow("api.example.com"))
    flow = await chain.run(inner_flow(connect, host_header="API.example.com:443"))
    assert flow.response is not None and flow.response.status_code == 200


async def test_domain_fronting_by_sni_is_refused(chain: Chain) -> None:
    connect = await chain.connect(make_connect_flow("api.example.com"))
    connect.client_conn.sni = "other.example.com"
    flow = await chain.run(inner_flow(connect))
    assert flow.response is not None and flow.response.status_code == 403
    assert "TLS SNI other.example.com does not match" in flow.response.text


async def test_absolute_form_host_header_must_match_url(chain: Chain) -> None:
    flow = await chain.run(make_request_flow("http://api.example.com/", headers={"host": "other.example.com"}))
    assert flow.response is not None and flow.response.status_code == 403
    assert "domain fronting is refused" in flow.response.text


async def test_private_answers_are_refused_unless_named(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("*.example.com"), allow("db.internal"), allow("*")])})
    rebind = await chain.run(make_request_flow("http://rebind.example.com/"))
    assert rebind.response is not None and rebind.response.status_code == 403
    assert "rebind.example.com resolves to 10.9.9.9, a private address" in rebind.response.text
    metadata = await chain.connect(make_connect_flow("169.254.169.254", 80))
    assert metadata.response is not None and metadata.response.status_code == 403
    assert "cloud metadata" in metadata.response.text
    named = await chain.run(make_request_flow("http://db.internal/"))
    assert named.response is not None and named.response.status_code == 200
    assert named.request.host == "10.0.0.50"


async def test_removing_the_naming_rule_closes_an_open_private_tunnel(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("db.internal")])})
    connect = await chain.connect(make_connect_flow("db.internal"))
    first = await chain.run(inner_flow(connect))
    assert first.response is not None and first.response.status_code == 200
    chain.set_state(**{SANDBOX_IP: sandbox([allow("*.internal")])})
    second = await chain.run(inner_flow(connect))
    assert second.response is not None and second.response.status_code == 403
    assert "10.0.0.50, a private address" in second.response.text


async def test_policy_change_applies_to_the_next_request_in_a_tunnel(chain: Chain) -> None:
    connect = await chain.connect(make_connect_flow("api.example.com"))
    assert (await chain.run(inner_flow(connect))).response.status_code == 200  # type: ignore[union-attr]
    chain.set_state(**{SANDBOX_IP: sandbox([])})
    assert (await chain.run(inner_flow(connect))).response.status_code == 403  # type: ignore[union-attr]


async def test_unresolvable_host_is_a_502_failure(chain: Chain) -> None:
    chain.set_state(**{SANDBOX_IP: sandbox([allow("nowhere.example.com")])})
    flow = await chain.run(make_request_flow("http://nowhere.example.com/"))
    assert flow.response is not None and flow.response.status_code == 502
    assert record(flow).blocked is None
    assert record(flow).failure is not None and "cannot resolve nowhere.example.com" in record(flow).failure


async def test_server_connect_only_to_checked_addresses(chain: Chain) -> None:
    policy = chain.addons[1]
    flow = await chain.run(make_request_flow("http://api.example.com/"))
    server = tflow.tserver_conn()
    server.address = ("93.184.216.34", 80)
    policy.server_connect(server_hooks.ServerConnectionHookData(server=server, client=flow.client_conn))
    assert server.error is None
    other = tflow.tserver_conn()
    other.address = ("10.0.0.1", 80)
    policy.server_connect(server_hooks.ServerConnectionHookData(server=other, client=flow.client_conn))
    assert other.error is not None


async def test_disconnect_forgets_tunnels_and_addresses(chain: Chain) -> None:
    policy = chain.addons[1]
    connect = await chain.connect(make_connect_flow("api.example.com"))
    policy.client_disconnected(connect.client_conn)
    server = tflow.tserver_conn()
    server.address = ("93.184.216.34", 443)
    policy.server_connect(server_hooks.ServerConnectionHookData(server=server, client=connect.client_conn))
    assert server.error is not None


def test_raw_tcp_is_never_relayed(chain: Chain) -> None:
    flow = tflow.ttcpflow()
    chain.addons[1].tcp_message(flow)
    assert flow.messages[-1].content == b""
    assert flow.error is not None

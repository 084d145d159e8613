from __future__ import annotations

import pytest

from egress_proxy.rules import RuleError, compile_policy, normalize_host, parse_rule, path_is_ambiguous


def allow(host: str, **extra: object) -> dict[str, object]:
    return {"action": "allow", "host": host, **extra}


def deny(host: str, **extra: object) -> dict[str, object]:
    return {"action": "deny", "host": host, **extra}


def test_empty_policy_denies_everything() -> None:
    decision = compile_policy([]).decide_request("api.example.com", 443, "GET", "/")
    assert not decision.allowed
    assert "no allow rule matches api.example.com:443 (default deny)" in decision.reason


def test_exact_host_matches_only_that_host() -> None:
    policy = compile_policy([allow("api.example.com")])
    assert policy.decide_request("api.example.com", 443, "GET", "/").allowed
    assert not policy.decide_request("example.com", 443, "GET", "/").allowed
    assert not policy.decide_request("x.api.example.com", 443, "GET", "/").allowed


def test_host_comparison_ignores_case_and_trailing_dot() -> None:
    policy = compile_policy([allow("API.Example.com.")])
    assert policy.decide_request(normalize_host("api.EXAMPLE.com."), 443, "GET", "/").allowed


def test_wildcard_matches_subdomains_at_any_depth_but_not_the_apex() -> None:
    policy = compile_policy([allow("*.example.com")])
    assert policy.decide_request("a.example.com", 443, "GET", "/").allowed
    assert policy.decide_request("a.b.example.com", 443, "GET", "/").allowed
    assert not policy.decide_request("example.com", 443, "GET", "/").allowed
    assert not policy.decide_request("badexample.com", 443, "GET", "/").allowed


def test_port_restricts_and_null_port_means_any() -> None:
    policy = compile_policy([allow("a.example", port=443), allow("b.example")])
    assert policy.decide_request("a.example", 443, "GET", "/").allowed
    assert not policy.decide_request("a.example", 8443, "GET", "/").allowed
    assert policy.decide_request("b.example", 8443, "GET", "/").allowed


def test_methods_and_path_prefix() -> None:
    policy = compile_policy([allow("api.example", methods=["get", "HEAD"], path_prefix="/v1/")])
    assert policy.decide_request("api.example", 443, "GET", "/v1/items").allowed
    assert policy.decide_request("api.example", 443, "HEAD", "/v1/").allowed
    refused = policy.decide_request("api.example", 443, "POST", "/v1/items")
    assert not refused.allowed
    assert "no allow rule for api.example:443 matches POST /v1/items" in refused.reason
    assert not policy.decide_request("api.example", 443, "GET", "/v2/items").allowed


def test_dot_segments_never_satisfy_an_allow_prefix_and_always_a_deny_prefix() -> None:
    policy = compile_policy([allow("api.example", path_prefix="/v1/")])
    assert not policy.decide_request("api.example", 443, "GET", "/v1/../admin").allowed
    assert not policy.decide_request("api.example", 443, "GET", "/v1/%2e%2e/admin").allowed
    denying = compile_policy([allow("api.example"), deny("api.example", path_prefix="/admin")])
    assert not denying.decide_request("api.example", 443, "GET", "/x/../admin").allowed
    assert denying.decide_request("api.example", 443, "GET", "/x/admin").allowed


def test_deny_wins_over_allow_whatever_the_order() -> None:
    for rules in ([allow("*.example.com"), deny("admin.example.com", name="no admin")],
                  [deny("admin.example.com", name="no admin"), allow("*.example.com")]):
        decision = compile_policy(rules).decide_request("admin.example.com", 443, "GET", "/")
        assert not decision.allowed
        assert "rule 'no admin' (deny admin.example.com)" in decision.reason


def test_connect_is_allowed_when_some_request_inside_could_be() -> None:
    policy = compile_policy([allow("api.example", methods=["GET"]), deny("api.example", methods=["DELETE"])])
    assert policy.decide_connect("api.example", 443).allowed
    assert not policy.decide_connect("other.example", 443).allowed
    assert not compile_policy([allow("*.example"), deny("x.example")]).decide_connect("x.example", 443).allowed


def test_explicit_hosts_are_exact_allow_rules_only() -> None:
    policy = compile_policy([allow("10.0.0.7"), allow("*.internal"), allow("*"), deny("db.local")])
    assert policy.names_explicitly("10.0.0.7")
    assert not policy.names_explicitly("x.internal")
    assert not policy.names_explicitly("db.local")


def test_star_matches_any_host() -> None:
    assert compile_policy([allow("*")]).decide_request("anything.example", 80, "GET", "/").allowed


def test_ip_literals_are_normalized() -> None:
    policy = compile_policy([allow("[0:0::1]")])
    assert policy.decide_request(normalize_host("[::1]"), 80, "GET", "/").allowed


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"action": "permit", "host": "a"}, "action must be 'allow' or 'deny'"),
        ({"action": "allow"}, "host must be a non-empty string"),
        ({"action": "allow", "host": "a.*.com"}, "'*' is only allowed as a leading"),
        ({"action": "allow", "host": "https://a.com/x"}, "bare host name"),
        ({"action": "allow", "host": "a", "port": 70000}, "port must be an integer"),
        ({"action": "allow", "host": "a", "port": True}, "port must be an integer"),
        ({"action": "allow", "host": "a", "methods": []}, "methods must be a non-empty list"),
        ({"action": "allow", "host": "a", "path_prefix": "v1"}, "path_prefix must be a string starting with '/'"),
        ({"action": "allow", "host": "a", "hosts": "b"}, "unknown rule field(s) ['hosts']"),
    ],
)
def test_bad_rules_are_refused_with_a_message(raw: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=None) as excinfo:
        parse_rule(raw)
    assert message in str(excinfo.value)


def test_compile_names_the_bad_rule_index() -> None:
    with pytest.raises(RuleError, match=r"rules\[1\]"):
        compile_policy([allow("a"), {"action": "allow"}])


def test_path_is_ambiguous() -> None:
    assert path_is_ambiguous("/a/../b")
    assert path_is_ambiguous("/a/./b")
    assert path_is_ambiguous("/a/%2E%2E/b")
    assert not path_is_ambiguous("/a/..b/c")
    assert not path_is_ambiguous("/")

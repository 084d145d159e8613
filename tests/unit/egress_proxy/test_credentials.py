from __future__ import annotations

import base64
from typing import Any

import pytest

from egress_proxy.credentials import SecretError, compile_secrets, parse_secret

PH = "sandboxd-ph-0123456789ab"
VALUE = "ghp_realvalue/with+chars"


def secret(**extra: Any) -> dict[str, Any]:
    return {"name": "GITHUB_TOKEN", "placeholder": PH, "value": VALUE, "hosts": ["api.github.com", "*.github.com"], **extra}


def test_hosts_exact_and_wildcard() -> None:
    parsed = parse_secret(secret())
    assert parsed.allowed_for("api.github.com")
    assert parsed.allowed_for("uploads.github.com")
    assert not parsed.allowed_for("github.com.evil.example")


def test_header_injection_renders_the_template() -> None:
    parsed = parse_secret(secret(inject={"type": "header", "header": "Authorization", "template": "Bearer {value}"}))
    assert parsed.injected_header() == ("Authorization", f"Bearer {VALUE}")


def test_template_is_not_a_format_string() -> None:
    parsed = parse_secret(secret(inject={"type": "header", "header": "X-Key", "template": "{value} {0} {other}"}))
    assert parsed.injected_header() == ("X-Key", f"{VALUE} {{0}} {{other}}")


def test_basic_injection() -> None:
    parsed = parse_secret(secret(inject={"type": "basic", "username": "x"}))
    assert parsed.injected_header() == ("Authorization", "Basic " + base64.b64encode(f"x:{VALUE}".encode()).decode())


def test_leak_forms_cover_raw_quoted_json_and_basic() -> None:
    parsed = parse_secret(secret(value='v"al/ue+1', inject={"type": "basic", "username": "u"}))
    forms = parsed.leak_forms()
    assert forms[b'v"al/ue+1'] == PH.encode()
    assert forms[b"v%22al%2Fue%2B1"] == PH.encode()
    assert forms[b'v\\"al/ue+1'] == PH.encode()
    assert forms[base64.b64encode(b'u:v"al/ue+1')] == base64.b64encode(f"u:{PH}".encode())


def test_repr_never_shows_value_or_placeholder() -> None:
    text = repr(parse_secret(secret()))
    assert VALUE not in text and PH not in text


def test_find_placeholders_and_name_them() -> None:
    other = secret(name="OTHER", placeholder="sandboxd-ph-zzzzzzzzzzzz", value="another-value")
    secrets = compile_secrets([secret(), other])
    found = secrets.find_placeholders(f"a {PH} b sandboxd-ph-zzzzzzzzzzzz {PH}".encode())
    assert [s.name for s in found] == ["GITHUB_TOKEN", "OTHER"]
    assert secrets.name_placeholders(f"/x/{PH}") == "/x/{GITHUB_TOKEN}"
    assert secrets.response_scrubber.scrub(b"echo " + VALUE.encode()) == b"echo " + PH.encode()


def test_no_secrets_is_falsy_and_finds_nothing() -> None:
    empty = compile_secrets([])
    assert not empty
    assert empty.find_placeholders(PH.encode()) == []
    assert not empty.response_scrubber


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (secret(placeholder="short"), "placeholder must be 12-200 URL-safe characters"),
        (secret(placeholder="sandboxd ph with spaces"), "placeholder must be"),
        (secret(value="abc"), "value must be a string of at least"),
        (secret(value="line1\r\nX-Evil: 1"), "must not contain CR, LF or NUL"),
        (secret(hosts=[]), "hosts must be a non-empty list"),
        (secret(hosts=["*"]), "hosts may not contain '*'"),
        (secret(inject={"type": "header", "header": "Bad Header"}), "inject.header must be a valid header name"),
        (secret(inject={"type": "header", "header": "X", "template": "no placeholder"}), "inject.template"),
        (secret(inject={"type": "basic", "username": "a:b"}), "inject.username"),
        (secret(inject={"type": "query"}), "inject.param"),
        (secret(inject={"type": "cookie"}), "inject.type must be"),
        (secret(allow_in_body="yes"), "allow_in_body must be true or false"),
        (secret(extra=1), "unknown secret field(s) ['extra']"),
    ],
)
def test_bad_secrets_are_refused_without_echoing_the_value(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SecretError) as excinfo:
        parse_secret(raw)
    assert message in str(excinfo.value)
    assert str(raw["value"]) not in str(excinfo.value)


def test_duplicate_names_and_placeholders_are_refused() -> None:
    with pytest.raises(SecretError, match="appears twice"):
        compile_secrets([secret(), secret(placeholder="sandboxd-ph-other0000000")])
    with pytest.raises(SecretError, match="reuses another secret's placeholder"):
        compile_secrets([secret(), secret(name="B")])

"""Secrets as the proxy sees them: where each may go, how it is injected, how it is scrubbed.

Inside a sandbox a secret exists only as its placeholder, a random token in an
environment variable. Everything here is computed once per state load: the
placeholder finder, the header an injection adds, and the byte strings that
must never come back to the sandbox (the value itself, and the encodings an
echoing upstream is likely to return: URL-quoted, JSON-escaped and, for basic
auth, the base64 of ``username:value``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from egress_proxy.rules import HostPattern, RuleError, parse_host_pattern
from egress_proxy.scrubbing import Scrubber

_SECRET_KEYS = frozenset(
    {"name", "placeholder", "value", "hosts", "inject", "allow_in_body", "allow_in_query"}
)
_PLACEHOLDER = re.compile(r"[A-Za-z0-9._~-]{12,200}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MIN_VALUE_LENGTH = 6


class SecretError(ValueError):
    """A secret entry that cannot be used; the message names the field (never the value)."""


@dataclass(frozen=True, slots=True)
class Injection:
    kind: Literal["header", "basic", "query"]
    header: str = ""
    template: str = ""
    username: str = ""
    param: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    name: str
    placeholder: str
    value: str
    hosts: tuple[HostPattern, ...]
    inject: Injection | None = None
    allow_in_body: bool = False
    allow_in_query: bool = False

    def __repr__(self) -> str:
        # Flows and log lines may print addon state; the value and placeholder must not appear.
        return f"Secret(name={self.name!r}, hosts={[str(h) for h in self.hosts]})"

    def allowed_for(self, host: str) -> bool:
        return any(pattern.matches(host) for pattern in self.hosts)

    def hosts_text(self) -> str:
        return ", ".join(str(h) for h in self.hosts)

    def injected_header(self) -> tuple[str, str] | None:
        """The (name, value) header this secret adds to requests for its hosts, if any."""
        if self.inject is None:
            return None
        if self.inject.kind == "header":
            return self.inject.header, self.inject.template.replace("{value}", self.value)
        if self.inject.kind == "basic":
            return "Authorization", "Basic " + _basic_token(self.inject.username, self.value)
        return None

    def leak_forms(self) -> dict[bytes, bytes]:
        """Byte strings that would reveal the value, each mapped to what the sandbox sees instead."""
        placeholder = self.placeholder.encode()
        forms = {self.value.encode(): placeholder}
        for encoded in (quote(self.value, safe=""), json.dumps(self.value)[1:-1]):
            forms.setdefault(encoded.encode(), placeholder)
        if self.inject is not None and self.inject.kind == "basic":
            forms[_basic_token(self.inject.username, self.value).encode()] = _basic_token(
                self.inject.username, self.placeholder
            ).encode()
        return forms


def _basic_token(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True, slots=True)
class SecretSet:
    """All secrets of one sandbox, with the lookups the per-request hooks need."""

    secrets: tuple[Secret, ...] = ()
    by_placeholder: Mapping[bytes, Secret] = field(default_factory=dict)
    placeholder_pattern: re.Pattern[bytes] | None = None
    response_scrubber: Scrubber = field(default_factory=lambda: Scrubber({}))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def find_placeholders(self, data: bytes) -> list[Secret]:
        """The secrets whose placeholder occurs in ``data`` (each once, in order of appearance)."""
        if self.placeholder_pattern is None:
            return []
        found: dict[str, Secret] = {}
        for match in self.placeholder_pattern.finditer(data):
            secret = self.by_placeholder[match.group()]
            found.setdefault(secret.name, secret)
        return list(found.values())

    def name_placeholders(self, text: str) -> str:
        """``text`` with every placeholder replaced by ``{NAME}``, for audit records."""
        if self.placeholder_pattern is None:
            return text
        data = text.encode("utf-8", "surrogateescape")
        if self.placeholder_pattern.search(data) is None:
            return text
        return self.placeholder_pattern.sub(
            lambda m: ("{" + self.by_placeholder[m.group()].name + "}").encode(), data
        ).decode("utf-8", "surrogateescape")


def compile_secrets(raw: Sequence[object]) -> SecretSet:
    """Parse a sandbox's secret list; raises SecretError naming the first bad entry."""
    if not isinstance(raw, list):
        raise SecretError("secrets must be a list")
    secrets: list[Secret] = []
    for index, item in enumerate(raw):
        try:
            secrets.append(parse_secret(item))
        except (SecretError, RuleError) as exc:
            raise SecretError(f"secrets[{index}]: {exc}") from None
    _check_unique(secrets)
    if not secrets:
        return SecretSet()
    by_placeholder = {s.placeholder.encode(): s for s in secrets}
    pattern = re.compile(
        b"|".join(re.escape(p) for p in sorted(by_placeholder, key=len, reverse=True))
    )
    leaks: dict[bytes, bytes] = {}
    for secret in secrets:
        for form, replacement in secret.leak_forms().items():
            leaks.setdefault(form, replacement)
    return SecretSet(tuple(secrets), by_placeholder, pattern, Scrubber(leaks))


def _check_unique(secrets: Sequence[Secret]) -> None:
    names: set[str] = set()
    placeholders: set[str] = set()
    for secret in secrets:
        if secret.name in names:
            raise SecretError(f"secret name {secret.name!r} appears twice")
        if secret.placeholder in placeholders:
            raise SecretError(f"secret {secret.name!r} reuses another secret's placeholder")
        names.add(secret.name)
        placeholders.add(secret.placeholder)
    for secret in secrets:
        for other in secrets:
            if other is not secret and secret.placeholder in other.value:
                raise SecretError(f"secret {other.name!r} has a value containing a placeholder")


def parse_secret(raw: object) -> Secret:
    if not isinstance(raw, Mapping):
        raise SecretError("a secret must be an object")
    unknown = set(raw) - _SECRET_KEYS
    if unknown:
        raise SecretError(f"unknown secret field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SecretError("name must be a non-empty string")
    placeholder = raw.get("placeholder")
    if not isinstance(placeholder, str) or not _PLACEHOLDER.fullmatch(placeholder):
        raise SecretError(
            f"secret {name!r}: placeholder must be 12-200 URL-safe characters (letters, digits, '._~-')"
        )
    value = raw.get("value")
    if not isinstance(value, str) or len(value) < _MIN_VALUE_LENGTH:
        raise SecretError(
            f"secret {name!r}: value must be a string of at least {_MIN_VALUE_LENGTH} characters "
            "(shorter values would be scrubbed out of unrelated response bytes)"
        )
    if any(c in value for c in "\r\n\x00"):
        raise SecretError(f"secret {name!r}: value must not contain CR, LF or NUL (it may go into a header)")
    if placeholder in value or value in placeholder:
        raise SecretError(f"secret {name!r}: value and placeholder must not contain one another")
    hosts = raw.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise SecretError(f"secret {name!r}: hosts must be a non-empty list of host patterns")
    patterns = tuple(parse_host_pattern(h) for h in hosts)
    if any(p.exact is None and p.suffix is None for p in patterns):
        raise SecretError(f"secret {name!r}: hosts may not contain '*'; name the hosts the secret is for")
    return Secret(
        name=name,
        placeholder=placeholder,
        value=value,
        hosts=patterns,
        inject=_parse_injection(name, raw.get("inject")),
        allow_in_body=_flag(name, raw, "allow_in_body"),
        allow_in_query=_flag(name, raw, "allow_in_query"),
    )


def _flag(name: str, raw: Mapping[str, object], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SecretError(f"secret {name!r}: {key} must be true or false")
    return value


def _parse_injection(name: str, raw: object) -> Injection | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SecretError(f"secret {name!r}: inject must be an object or null")
    kind = raw.get("type")
    if kind == "header":
        header, template = raw.get("header"), raw.get("template", "{value}")
        if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            raise SecretError(f"secret {name!r}: inject.header must be a valid header name")
        if not isinstance(template, str) or "{value}" not in template or any(c in template for c in "\r\n\x00"):
            raise SecretError(f"secret {name!r}: inject.template must be one line containing '{{value}}'")
        return Injection("header", header=header, template=template)
    if kind == "basic":
        username = raw.get("username", "")
        if not isinstance(username, str) or ":" in username or any(c in username for c in "\r\n\x00"):
            raise SecretError(f"secret {name!r}: inject.username must be a string without ':'")
        return Injection("basic", username=username)
    if kind == "query":
        param = raw.get("param")
        if not isinstance(param, str) or not param:
            raise SecretError(f"secret {name!r}: inject.param must be a non-empty string")
        return Injection("query", param=param)
    raise SecretError(f"secret {name!r}: inject.type must be 'header', 'basic' or 'query', not {kind!r}")

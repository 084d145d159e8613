"""Egress policy rules: parsed once when the state file loads, matched per request.

A sandbox's policy is an ordered list of allow and deny rules. Nothing is
allowed unless an allow rule matches, and any matching deny rule wins over
every allow rule, so an owner can open ``*.example.com`` and still close
``admin.example.com`` without caring about rule order.

Host patterns are either exact (``api.example.com``, an IP literal) or a
leading wildcard (``*.example.com``, which matches any subdomain at any depth
but not ``example.com`` itself). A lone ``*`` matches every host; it does not
count as naming a host explicitly, so it never lifts the private-address guard.

A CONNECT is decided on host and port alone: it is let through when some allow
rule could match a request inside the tunnel, and refused only by a deny rule
without method or path conditions. Each request inside is decided again with
its method and path.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

Action = Literal["allow", "deny"]

_RULE_KEYS = frozenset({"action", "host", "port", "methods", "path_prefix", "name"})


class RuleError(ValueError):
    """A rule that cannot be used; the message names the field and what to fix."""


@functools.lru_cache(maxsize=4096)
def normalize_host(host: str) -> str:
    """The canonical spelling of a host used for every comparison.

    Lower case, no trailing dot, no IPv6 brackets, and IP literals in their
    compressed form, so ``[::1]``, ``0:0::1`` and ``::1`` compare equal.
    Cached: it runs on every request, and a failed IP parse is not cheap.
    """
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@dataclass(frozen=True, slots=True)
class HostPattern:
    """An exact host, a ``*.suffix`` wildcard or ``*`` (any host)."""

    text: str
    exact: str | None
    suffix: str | None

    def matches(self, host: str) -> bool:
        """``host`` must already be normalized."""
        if self.exact is not None:
            return host == self.exact
        if self.suffix is not None:
            return host.endswith(self.suffix)
        return True

    def __str__(self) -> str:
        return self.text


def parse_host_pattern(raw: object) -> HostPattern:
    if not isinstance(raw, str) or not raw.strip():
        raise RuleError("host must be a non-empty string such as 'api.example.com' or '*.example.com'")
    text = normalize_host(raw)
    if text == "*":
        return HostPattern(text, None, None)
    if text.startswith("*."):
        rest = text[2:]
        if not rest or "*" in rest:
            raise RuleError(f"host {raw!r}: a wildcard must be a single leading '*.' before a domain")
        return HostPattern(text, None, "." + rest)
    if "*" in text:
        raise RuleError(f"host {raw!r}: '*' is only allowed as a leading '*.' label")
    if any(c.isspace() or c in "/?#@" for c in text):
        raise RuleError(f"host {raw!r}: give a bare host name, without scheme, path or credentials")
    return HostPattern(text, text, None)


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    host: HostPattern
    port: int | None = None
    methods: frozenset[str] | None = None
    path_prefix: str | None = None
    name: str | None = None

    @property
    def has_request_conditions(self) -> bool:
        return self.methods is not None or self.path_prefix is not None

    def matches_destination(self, host: str, port: int) -> bool:
        return (self.port is None or self.port == port) and self.host.matches(host)

    def matches_request(self, host: str, port: int, method: str, path: str, path_is_ambiguous: bool) -> bool:
        if not self.matches_destination(host, port):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.path_prefix is not None:
            # A path with dot segments may be normalized differently upstream, so
            # it never satisfies an allow prefix and always satisfies a deny prefix.
            if path_is_ambiguous:
                return self.action == "deny"
            return path.startswith(self.path_prefix)
        return True

    def describe(self) -> str:
        """A short human-readable form for 403 bodies and logs."""
        text = f"{self.action} {self.host}"
        if self.port is not None:
            text += f":{self.port}"
        if self.methods is not None:
            text += " " + ",".join(sorted(self.methods))
        if self.path_prefix is not None:
            text += f" {self.path_prefix}*"
        if self.name:
            return f"rule {self.name!r} ({text})"
        return f"rule ({text})"


def parse_rule(raw: object) -> Rule:
    if not isinstance(raw, Mapping):
        raise RuleError("a rule must be an object with at least 'action' and 'host'")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise RuleError(f"unknown rule field(s) {sorted(unknown)}; known fields are {sorted(_RULE_KEYS)}")
    action = raw.get("action")
    if action not in ("allow", "deny"):
        raise RuleError(f"action must be 'allow' or 'deny', not {action!r}")
    port = raw.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise RuleError(f"port must be an integer between 1 and 65535 or null, not {port!r}")
    methods = _parse_methods(raw.get("methods"))
    path_prefix = raw.get("path_prefix")
    if path_prefix is not None and (not isinstance(path_prefix, str) or not path_prefix.startswith("/")):
        raise RuleError(f"path_prefix must be a string starting with '/' or null, not {path_prefix!r}")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise RuleError("name must be a string or null")
    return Rule(action, parse_host_pattern(raw.get("host")), port, methods, path_prefix or None, name or None)


def _parse_methods(raw: object) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) and m.strip() for m in raw):
        raise RuleError("methods must be a non-empty list of HTTP method names such as ['GET'], or null")
    return frozenset(m.strip().upper() for m in raw)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    """Why the request was allowed or refused, written for the person who can change the policy."""
    rule: Rule | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The compiled rules of one sandbox."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()
    explicit_hosts: frozenset[str] = frozenset()
    """Hosts named by an exact allow rule: the only ones allowed to reach private addresses."""
    any_path_rules: bool = False

    def decide_connect(self, host: str, port: int) -> Decision:
        """Decide a CONNECT (or the destination of any request) by host and port alone."""
        for rule in self.deny:
            if not rule.has_request_conditions and rule.matches_destination(host, port):
                return Decision(False, f"{rule.describe()} matches {host}:{port}", rule)
        for rule in self.allow:
            if rule.matches_destination(host, port):
                return Decision(True, f"{rule.describe()} matches {host}:{port}", rule)
        return Decision(False, _default_deny(host, port))

    def decide_request(self, host: str, port: int, method: str, path: str) -> Decision:
        """Decide one HTTP request; ``path`` is the path without the query string."""
        ambiguous = self.any_path_rules and path_is_ambiguous(path)
        for rule in self.deny:
            if rule.matches_request(host, port, method, path, ambiguous):
                return Decision(False, f"{rule.describe()} matches {method} {host}:{port}{path}", rule)
        for rule in self.allow:
            if rule.matches_request(host, port, method, path, ambiguous):
                return Decision(True, f"{rule.describe()} matches", rule)
        if any(rule.matches_destination(host, port) for rule in self.allow):
            return Decision(
                False,
                f"no allow rule for {host}:{port} matches {method} {path}"
                + (" (the path has '.' or '..' segments)" if ambiguous else "")
                + " (default deny)",
            )
        return Decision(False, _default_deny(host, port))

    def names_explicitly(self, host: str) -> bool:
        return host in self.explicit_hosts


def _default_deny(host: str, port: int) -> str:
    return f"no allow rule matches {host}:{port} (default deny)"


def compile_policy(raw_rules: Iterable[Any]) -> Policy:
    """Parse and index a rule list; raises RuleError naming the first bad rule."""
    rules: list[Rule] = []
    for index, raw in enumerate(raw_rules):
        try:
            rules.append(parse_rule(raw))
        except RuleError as exc:
            raise RuleError(f"rules[{index}]: {exc}") from None
    allow = tuple(r for r in rules if r.action == "allow")
    deny = tuple(r for r in rules if r.action == "deny")
    explicit = frozenset(r.host.exact for r in allow if r.host.exact is not None)
    return Policy(allow, deny, explicit, any(r.path_prefix is not None for r in rules))


def path_is_ambiguous(path: str) -> bool:
    """True when the path has dot segments (plain or percent-encoded) that an upstream may resolve."""
    decoded = unquote(path)
    return any(segment in (".", "..") for segment in decoded.replace("\\", "/").split("/"))

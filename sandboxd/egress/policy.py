"""Checking egress rules the way the proxy will: with its own parser (``egress_proxy.rules``)."""

from __future__ import annotations

from typing import Any

from egress_proxy.rules import RuleError, compile_policy
from sandboxd.errors import InvalidRequest


def validate_rules(rules: list[dict[str, Any]], where: str = "rules") -> list[dict[str, Any]]:
    """Return the rules if the proxy would accept them.

    Raises:
        InvalidRequest: names the first bad rule and what to fix.
    """
    try:
        compile_policy(rules)
    except RuleError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    return rules

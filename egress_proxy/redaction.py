"""What of a request path may be written down: the path, and the query's keys but not its values.

Query values carry tokens (the sandbox's own, or a secret the proxy put there),
so the audit keeps only their names.
"""

from __future__ import annotations

REDACTED = "REDACTED"


def redact_query(path: str) -> str:
    """``/x?a=1&b=&flag`` -> ``/x?a=REDACTED&b=REDACTED&REDACTED``.

    A bare item without ``=`` may itself be a token, so it is redacted whole.
    """
    base, sep, query = path.partition("?")
    if not sep:
        return path
    items = []
    for item in query.split("&"):
        if not item:
            continue
        key, eq, _ = item.partition("=")
        items.append(f"{key}={REDACTED}" if eq else REDACTED)
    return f"{base}?{'&'.join(items)}"

from __future__ import annotations

import pytest

from egress_proxy.redaction import redact_query


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/x", "/x"),
        ("/x?", "/x?"),
        ("/x?a=1", "/x?a=REDACTED"),
        ("/x?a=1&b=&c=3", "/x?a=REDACTED&b=REDACTED&c=REDACTED"),
        ("/x?token", "/x?REDACTED"),
        ("/x?a=1&&b=2", "/x?a=REDACTED&b=REDACTED"),
        ("/x?a=b=c", "/x?a=REDACTED"),
    ],
)
def test_query_values_are_redacted_and_keys_kept(path: str, expected: str) -> None:
    assert redact_query(path) == expected

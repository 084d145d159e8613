"""Fixtures for the egress addon tests; the fakes themselves live in egress_fakes.py.

Tests import helpers from ``egress_fakes`` (a unique module name) rather than
from a conftest, which pytest may load under the same name as other conftests.
"""

from tests.unit.egress_proxy.egress_fakes import chain  # noqa: F401 - re-exported so pytest finds the fixture

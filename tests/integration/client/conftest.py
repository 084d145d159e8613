"""SDK clients of the session's daemon (see tests/integration/conftest.py), admin and second tenant."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from sandboxd.client import AsyncClient, Client
from tests.integration.conftest import DaemonProcess


@pytest.fixture(scope="session")
def client(daemon: DaemonProcess) -> Iterator[Client]:
    with Client(daemon.url, daemon.admin_key) as c:
        yield c


@pytest.fixture
async def aclient(daemon: DaemonProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(daemon.url, daemon.admin_key) as c:
        yield c


@pytest.fixture(scope="session")
def other_tenant(daemon: DaemonProcess, client: Client) -> Iterator[Client]:
    """A client of a second, non-admin tenant."""
    tenant = client.tenants.create("sdk-other-" + secrets.token_hex(3))
    key = client.keys.create(tenant.id, name="sdk tests")
    assert key.key is not None
    with Client(daemon.url, key.key) as c:
        yield c
    client.keys.revoke(key.id)


@pytest.fixture
def sbx(client: Client) -> Iterator:
    """A fresh sandbox, deleted on the way out by its context manager."""
    with client.sandboxes.create(labels={"suite": "sdk"}) as sandbox:
        yield sandbox

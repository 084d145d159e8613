"""Error mapping and retries of the SDK's HTTP layer, against httpx.MockTransport."""

from __future__ import annotations

import httpx
import pytest

from sandboxd.client import Client
from sandboxd.client._http import error_from_response
from sandboxd.errors import (
    Conflict,
    Forbidden,
    ImageNotFound,
    InvalidRequest,
    IsADirectory,
    NotFound,
    SandboxdError,
    SandboxUnavailable,
    Unauthenticated,
)

from .conftest import SANDBOX_ID, FakeDaemon


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"error": "not_found", "message": "no sandbox sbx_x"}, NotFound),
        (409, {"error": "is_a_directory", "message": "/workspace is a directory"}, IsADirectory),
        (422, {"error": "image_not_found", "message": "no image foo"}, ImageNotFound),
        (401, {"error": "unauthenticated", "message": "invalid API key"}, Unauthenticated),
        (503, {"error": "sandbox_unavailable", "message": "asleep"}, SandboxUnavailable),
        # Codes this SDK does not know fall back to the class of the status.
        (405, {"error": "method_not_allowed", "message": "PATCH is not allowed"}, SandboxdError),
        (409, {"error": "snapshot_busy", "message": "a snapshot is running"}, Conflict),
        (403, {"error": "some_new_code", "message": "no"}, Forbidden),
    ],
)
def test_error_bodies_become_the_class_their_code_names(status: int, body: dict, expected: type) -> None:
    error = error_from_response(httpx.Response(status, json=body))
    assert type(error) is expected
    assert error.message == body["message"]


def test_validation_details_survive() -> None:
    body = {"error": "invalid_request", "message": "cpus: must be > 0", "details": {"errors": [{"loc": ["cpus"]}]}}
    error = error_from_response(httpx.Response(422, json=body))
    assert isinstance(error, InvalidRequest)
    assert error.details == {"errors": [{"loc": ["cpus"]}]}


def test_a_body_that_is_not_ours_still_maps_by_status() -> None:
    error = error_from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert error.status == 502 and "Bad Gateway" in error.message
    error = error_from_response(httpx.Response(404, text=""))
    assert isinstance(error, NotFound)


def test_get_is_retried_on_connection_errors(fake: FakeDaemon, no_backoff: None) -> None:
    fake.refuse = 2
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(fake)) as client:
        sandbox = client.sandboxes.get(SANDBOX_ID)
    assert sandbox.id == SANDBOX_ID
    assert fake.calls() == [("GET", f"/v1/sandboxes/{SANDBOX_ID}")] * 3


def test_post_is_never_retried(fake: FakeDaemon, no_backoff: None) -> None:
    fake.refuse = 1
    client = Client("http://sbx.test", "key", transport=httpx.MockTransport(fake))
    with client, pytest.raises(SandboxdError, match="cannot reach sandboxd at http://sbx.test"):
        client.sandboxes.create()
    assert fake.calls() == [("POST", "/v1/sandboxes")]


def test_retries_give_up_with_a_clear_error(fake: FakeDaemon, no_backoff: None) -> None:
    fake.refuse = 100
    client = Client("http://sbx.test", "key", transport=httpx.MockTransport(fake))
    with client, pytest.raises(SandboxdError, match="cannot reach sandboxd") as caught:
        client.sandboxes.get(SANDBOX_ID)
    assert not isinstance(caught.value, httpx.HTTPError)
    assert len(fake.requests) == 4  # the first attempt and three retries


def test_put_of_bytes_is_retried_with_the_same_body(fake: FakeDaemon, no_backoff: None) -> None:
    path = f"/v1/sandboxes/{SANDBOX_ID}/files/content"
    fake.on("PUT", path, {"name": "a.txt", "type": "file", "size": 5, "mode": "0644"})
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(fake)) as client:
        sandbox = client.sandboxes.get(SANDBOX_ID)
        fake.refuse = 1
        info = sandbox.files.write("a.txt", b"hello")
    assert info.size == 5
    assert fake.calls()[-2:] == [("PUT", path), ("PUT", path)]
    assert fake.bodies[-1] == b"hello"


def test_put_of_a_seekable_file_is_retried_from_its_start(fake: FakeDaemon, no_backoff: None, tmp_path) -> None:
    path = f"/v1/sandboxes/{SANDBOX_ID}/files/content"
    fake.on("PUT", path, {"name": "a.bin", "type": "file", "size": 3})
    source = tmp_path / "a.bin"
    source.write_bytes(b"xyzabc")
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(fake)) as client:
        sandbox = client.sandboxes.get(SANDBOX_ID)
        fake.refuse = 1
        with source.open("rb") as f:
            f.seek(3)
            sandbox.files.write("a.bin", f)
    assert fake.bodies[-1] == b"abc"


def test_put_of_a_one_shot_iterator_is_not_retried(fake: FakeDaemon, no_backoff: None) -> None:
    path = f"/v1/sandboxes/{SANDBOX_ID}/files/content"
    fake.on("PUT", path, {"name": "a", "type": "file"})
    with Client("http://sbx.test", "key", transport=httpx.MockTransport(fake)) as client:
        sandbox = client.sandboxes.get(SANDBOX_ID)
        fake.refuse = 1
        with pytest.raises(SandboxdError, match="cannot reach"):
            sandbox.files.write("a", iter([b"one", b"two"]))
    assert fake.calls().count(("PUT", path)) == 1


def test_the_key_goes_in_a_bearer_header_and_env_gives_defaults(
    fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDBOXD_URL", "http://from-env.test:9000/")
    monkeypatch.setenv("SANDBOXD_API_KEY", "env-key")
    with Client(transport=httpx.MockTransport(fake)) as client:
        client.sandboxes.get(SANDBOX_ID)
        assert client.url == "http://from-env.test:9000"
    request = fake.requests[0]
    assert request.headers["Authorization"] == "Bearer env-key"
    assert str(request.url).startswith("http://from-env.test:9000/v1/")


def test_defaults_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOXD_URL", raising=False)
    monkeypatch.delenv("SANDBOXD_API_KEY", raising=False)
    with Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"ok": True}))) as client:
        assert client.url == "http://127.0.0.1:8080"
        assert "Authorization" not in client._http._client.headers

"""Malformed requests get a 4xx that says what to fix, never a 500."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"cpus": -1}, "cpus"),
        ({"memory_mb": 10**9}, "memory_mb"),
        ({"pids": 0}, "pids"),
        ({"memroy_mb": 512}, "unknown field"),
        ({"env": {"1BAD": "x"}}, "environment variable name"),
        ({"env": {"OK": "a\x00b"}}, "NUL"),
        ({"labels": {"Bad Key": "x"}}, "label key"),
        ({"image": "a\x00b"}, "NUL"),
    ],
)
def test_bad_create_bodies(admin: httpx.Client, body: dict, fragment: str) -> None:
    response = admin.post("/v1/sandboxes", json=body)
    assert 400 <= response.status_code < 500, response.text
    assert fragment in response.json()["message"]


def test_not_json(admin: httpx.Client) -> None:
    response = admin.post("/v1/sandboxes", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


def test_malformed_sandbox_id(admin: httpx.Client) -> None:
    response = admin.get("/v1/sandboxes/..%2Fetc")
    assert 400 <= response.status_code < 500
    response = admin.get("/v1/sandboxes/not-an-id")
    assert response.status_code == 422 and "sandbox id" in response.json()["message"]


def test_body_over_the_limit(admin: httpx.Client) -> None:
    response = admin.post("/v1/sandboxes", json={"labels": {"x": "y" * 200}, "env": {"BIG": "z" * 2_000_000}})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_exec_needs_argv_or_command(admin: httpx.Client, sandbox: dict) -> None:
    base = f"/v1/sandboxes/{sandbox['id']}/exec"
    neither = admin.post(base, json={})
    assert neither.status_code == 422 and "exactly one" in neither.json()["message"]
    assert admin.post(base, json={"argv": []}).status_code == 422
    assert admin.post(base, json={"command": "true", "timeout_s": -5}).status_code == 422
    assert admin.post(base, json={"command": "true", "timeout_s": 10**9}).status_code == 422
    root = admin.post(base, json={"command": "id", "user": "root"})
    assert root.status_code == 422 and "sandbox user" in root.json()["message"]


def test_unknown_route_and_method(admin: httpx.Client) -> None:
    assert admin.get("/v1/nothing-here").status_code == 404
    assert admin.put("/v1/sandboxes").status_code == 405

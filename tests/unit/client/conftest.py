"""A fake daemon for SDK unit tests: routes requests to handlers and records what it was sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

SANDBOX_ID = "sbx_aaaaaaaaaaaaaaaaaaaa"


def sandbox_body(state: str = "running", **extra: Any) -> dict[str, Any]:
    return {
        "id": SANDBOX_ID,
        "state": state,
        "image": "sandboxd/sandbox:latest",
        "labels": {},
        "limits": {"cpus": 1.0, "memory_mb": 1024, "pids": 512, "nofile": 4096},
        "env": {},
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        **extra,
    }


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeDaemon:
    """Answers by (method, path); records each request with its body read."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    # The next this-many requests fail as if the daemon refused the connection.
    refuse: int = 0

    def on(self, method: str, path: str, answer: Handler | httpx.Response | dict | int) -> None:
        if isinstance(answer, httpx.Response):
            response = answer
            self.routes[(method, path)] = lambda _req: response
        elif isinstance(answer, dict):
            body = answer
            self.routes[(method, path)] = lambda _req: httpx.Response(200, json=body)
        elif isinstance(answer, int):
            status = answer
            self.routes[(method, path)] = lambda _req: httpx.Response(status)
        else:
            self.routes[(method, path)] = answer

    def _refused(self, request: httpx.Request) -> None:
        if self.refuse > 0:
            self.refuse -= 1
            raise httpx.ConnectError("connection refused", request=request)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        self._refused(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"error": "not_found", "message": f"no route {request.url.path}"})
        return handler(request)

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(await request.aread())
        self._refused(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404, json={"error": "not_found", "message": f"no route {request.url.path}"})
        return handler(request)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


@pytest.fixture
def fake() -> FakeDaemon:
    daemon = FakeDaemon()
    daemon.on("POST", "/v1/sandboxes", httpx.Response(201, json=sandbox_body()))
    daemon.on("GET", f"/v1/sandboxes/{SANDBOX_ID}", sandbox_body())
    daemon.on("DELETE", f"/v1/sandboxes/{SANDBOX_ID}", 204)
    return daemon


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandboxd.client import _http

    monkeypatch.setattr(_http, "RETRY_DELAYS", (0.0, 0.0, 0.0))

"""The SDK's one door to the network: auth, error mapping and retries, for both twins.

Every answer of 400 or more becomes the ``sandboxd.errors`` class its ``error`` code
names, carrying the server's message; httpx's own exceptions never reach a caller
(a daemon that cannot be reached is a ``SandboxdError`` that says so).

Retries: a call whose repetition cannot change the outcome (GET, PUT, DELETE) is
retried on connection failures after a short backoff, as long as its body can be
sent again. A POST is never retried: the first attempt may have run the command
or created the sandbox before the connection broke.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import httpx

from sandboxd.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RuntimeFailure,
    SandboxdError,
    SandboxUnavailable,
    Unauthenticated,
    error_from_code,
)

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=5.0)
RETRY_DELAYS: tuple[float, ...] = (0.1, 0.3, 1.0)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Failures where the request cannot have been acted on, or (for idempotent calls) where acting twice is harmless.
RETRYABLE_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)

_BY_STATUS: dict[int, type[SandboxdError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    502: RuntimeFailure,
    503: SandboxUnavailable,
}

Body = bytes | Iterator[bytes] | AsyncIterator[bytes] | None
# Makes a fresh body for another attempt; None when the body cannot be sent twice.
Replay = Callable[[], Body] | None


def resolve(url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The daemon's URL and the key, from the arguments or else SANDBOXD_URL / SANDBOXD_API_KEY."""
    url = url or os.environ.get("SANDBOXD_URL") or DEFAULT_URL
    api_key = api_key or os.environ.get("SANDBOXD_API_KEY") or None
    return url.rstrip("/"), api_key


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": "sandboxd-sdk/0.1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def error_from_response(response: httpx.Response) -> SandboxdError:
    """The domain error an error answer stands for (its body must have been read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = str(body.get("error", ""))
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        error = error_from_code(code, body["message"], **details)
        if type(error) is not SandboxdError or code == SandboxdError.code:
            return error
        return _BY_STATUS.get(response.status_code, SandboxdError)(body["message"], **details)
    text = response.text.strip()[:200] or response.reason_phrase
    cls = _BY_STATUS.get(response.status_code, SandboxdError)
    return cls(f"sandboxd answered HTTP {response.status_code}: {text}")


def transport_error(url: str, exc: httpx.TransportError) -> SandboxdError:
    if isinstance(exc, httpx.TimeoutException):
        return SandboxdError(f"no answer from sandboxd at {url} in time ({type(exc).__name__})", url=url)
    return SandboxdError(f"cannot reach sandboxd at {url}: {exc or type(exc).__name__}", url=url)


def may_retry(method: str, exc: httpx.TransportError, attempt: int, replayable: bool) -> bool:
    return (
        attempt < len(RETRY_DELAYS)
        and method in IDEMPOTENT_METHODS
        and replayable
        and isinstance(exc, RETRYABLE_ERRORS)
    )


def _replayable(content: Body, replay: Replay) -> bool:
    return content is None or isinstance(content, bytes) or replay is not None


class SyncHTTP:
    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        *,
        timeout: httpx.Timeout | float | None,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url, self.api_key = resolve(url, api_key)
        self._client = httpx.Client(
            base_url=self.url, headers=auth_headers(self.api_key), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Body = None,
        replay: Replay = None,
        timeout: httpx.Timeout | float | None | object = httpx.USE_CLIENT_DEFAULT,
        stream: bool = False,
    ) -> httpx.Response:
        """One call, retried where that is safe; a streamed answer must be closed by the caller.

        Raises:
            SandboxdError: the error the daemon answered, or that it could not be reached.
        """
        attempt = 0
        while True:
            request = self._client.build_request(
                method,
                path,
                params=params,
                json=json,
                content=content,
                timeout=timeout,  # type: ignore[arg-type]
            )
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                if not may_retry(method, exc, attempt, _replayable(content, replay)):
                    raise transport_error(self.url, exc) from None
                time.sleep(RETRY_DELAYS[attempt])
                attempt += 1
                if replay is not None:
                    content = replay()
                continue
            break
        try:
            if response.is_error or not stream:
                response.read()
        except httpx.TransportError as exc:
            response.close()
            raise transport_error(self.url, exc) from None
        if response.is_error:
            response.close()
            raise error_from_response(response)
        if not stream:
            response.close()
        return response

    def iter_bytes(self, response: httpx.Response, chunk_size: int | None = None) -> Iterator[bytes]:
        """A streamed answer's body, closing it at the end or when the reader stops early."""
        try:
            yield from response.iter_bytes(chunk_size)
        except httpx.TransportError as exc:
            raise transport_error(self.url, exc) from None
        finally:
            response.close()


class AsyncHTTP:
    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        *,
        timeout: httpx.Timeout | float | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.url, self.api_key = resolve(url, api_key)
        self._client = httpx.AsyncClient(
            base_url=self.url, headers=auth_headers(self.api_key), timeout=timeout, transport=transport
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: Body = None,
        replay: Replay = None,
        timeout: httpx.Timeout | float | None | object = httpx.USE_CLIENT_DEFAULT,
        stream: bool = False,
    ) -> httpx.Response:
        """One call, retried where that is safe; a streamed answer must be closed by the caller.

        Raises:
            SandboxdError: the error the daemon answered, or that it could not be reached.
        """
        attempt = 0
        while True:
            request = self._client.build_request(
                method,
                path,
                params=params,
                json=json,
                content=content,
                timeout=timeout,  # type: ignore[arg-type]
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                if not may_retry(method, exc, attempt, _replayable(content, replay)):
                    raise transport_error(self.url, exc) from None
                await asyncio.sleep(RETRY_DELAYS[attempt])
                attempt += 1
                if replay is not None:
                    content = replay()
                continue
            break
        try:
            if response.is_error or not stream:
                await response.aread()
        except httpx.TransportError as exc:
            await response.aclose()
            raise transport_error(self.url, exc) from None
        if response.is_error:
            await response.aclose()
            raise error_from_response(response)
        if not stream:
            await response.aclose()
        return response

    async def iter_bytes(self, response: httpx.Response, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """A streamed answer's body, closing it at the end or when the reader stops early."""
        try:
            async for chunk in response.aiter_bytes(chunk_size):
                yield chunk
        except httpx.TransportError as exc:
            raise transport_error(self.url, exc) from None
        finally:
            await response.aclose()

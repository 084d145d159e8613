"""How MCP tools are declared: who is calling, and the one place failures become tool errors.

A tool is a plain async function with typed, described parameters (the SDK turns
them into the input schema) and a docstring written for the model that will call
it. ``ToolSet.tool`` records it with its hints; ``ToolSet.register`` wraps it so
that a domain error reaches the model as an ``isError`` result with advice, and
anything unexpected as a generic one, logged here with an incident id.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import ValidationError

from sandboxd.daemon import Daemon
from sandboxd.errors import SandboxdError, Unauthenticated
from sandboxd.mcp.errors import describe_error, describe_invalid_arguments
from sandboxd.service.tenants import Principal

__all__ = ["CALLER_SCOPE_KEY", "Caller", "ToolSet", "caller_of"]

log = logging.getLogger("sandboxd.mcp")

# The endpoint puts the authenticated caller into the ASGI scope under this key; the SDK hands
# tools the HTTP request that carried the message, so each call sees its own request's caller.
CALLER_SCOPE_KEY: Final = "sandboxd.caller"

ToolFn = TypeVar("ToolFn", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True, slots=True)
class Caller:
    daemon: Daemon
    principal: Principal


def caller_of(ctx: Context) -> Caller:
    request = ctx.request_context.request
    caller = request.scope.get(CALLER_SCOPE_KEY) if request is not None else None
    if not isinstance(caller, Caller):
        # Only reachable if the server is driven without the endpoint in front of it.
        raise Unauthenticated("this MCP request carries no authenticated API key")
    return caller


@dataclass(frozen=True, slots=True)
class _Declared:
    fn: Callable[..., Awaitable[Any]]
    annotations: ToolAnnotations


@dataclass
class ToolSet:
    """The tools of one area (sandboxes, commands, files, ...), registered together."""

    declared: list[_Declared] = field(default_factory=list)

    def tool(
        self,
        *,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        open_world: bool = False,
    ) -> Callable[[ToolFn], ToolFn]:
        hints = ToolAnnotations(
            read_only_hint=read_only,
            destructive_hint=destructive,
            idempotent_hint=idempotent,
            open_world_hint=open_world,
        )

        def declare(fn: ToolFn) -> ToolFn:
            self.declared.append(_Declared(fn, hints))
            return fn

        return declare

    def register(self, server: MCPServer) -> None:
        for item in self.declared:
            server.add_tool(
                reporting_errors(item.fn),
                description=inspect.cleandoc(item.fn.__doc__ or ""),
                annotations=item.annotations,
                structured_output=True,
            )


def reporting_errors(fn: ToolFn) -> ToolFn:
    """``fn`` with its failures turned into tool errors whose text says what to do next."""

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except SandboxdError as exc:
            if exc.status >= 500:
                log.warning("MCP tool %s: %s: %s", fn.__name__, exc.code, exc.message)
            raise ToolError(describe_error(exc)) from None
        except ValidationError as exc:
            raise ToolError(describe_invalid_arguments(exc)) from None
        except Exception:
            incident = secrets.token_hex(6)
            log.exception("MCP tool %s failed (incident %s)", fn.__name__, incident)
            raise ToolError(
                f"internal error in sandboxd (incident {incident}); the sandboxd log has the details. "
                "Try again; if it happens again, tell a human and quote the incident id."
            ) from None

    return call  # type: ignore[return-value]

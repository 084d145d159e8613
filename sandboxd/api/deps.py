"""Request dependencies as ``Annotated`` aliases, so route signatures read as declarations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from sandboxd.daemon import Daemon
from sandboxd.errors import Forbidden
from sandboxd.service.tenants import Principal


def get_daemon(request: Request) -> Daemon:
    return request.app.state.daemon


DaemonDep = Annotated[Daemon, Depends(get_daemon)]


def authenticate(daemon: DaemonDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return daemon.tenants.authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.admin:
        raise Forbidden("this endpoint needs an admin key")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]

"""Tenants and API keys; admin keys only."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Response, status

from sandboxd.api.deps import AdminPrincipal, DaemonDep
from sandboxd.models import CreateKey, CreateTenant

router = APIRouter(prefix="/v1", tags=["admin"])


def _key_out(key: Any) -> dict[str, Any]:
    body = dataclasses.asdict(key)
    body.pop("secret_hash", None)
    return body


@router.post("/tenants", status_code=status.HTTP_201_CREATED)
async def create_tenant(body: CreateTenant, principal: AdminPrincipal, daemon: DaemonDep) -> Any:
    return dataclasses.asdict(daemon.tenants.create_tenant(principal, body.name))


@router.get("/tenants")
async def list_tenants(principal: AdminPrincipal, daemon: DaemonDep) -> Any:
    return {"tenants": [dataclasses.asdict(t) for t in daemon.tenants.list_tenants(principal)]}


@router.post("/tenants/{tenant_id}/keys", status_code=status.HTTP_201_CREATED)
async def create_key(tenant_id: str, body: CreateKey, principal: AdminPrincipal, daemon: DaemonDep) -> Any:
    key, plaintext = daemon.tenants.create_key(principal, tenant_id, body.name, admin=body.admin)
    return {**_key_out(key), "key": plaintext}


@router.get("/keys")
async def list_keys(principal: AdminPrincipal, daemon: DaemonDep, tenant_id: str | None = None) -> Any:
    return {"keys": [_key_out(k) for k in daemon.tenants.list_keys(principal, tenant_id)]}


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key_id: str, principal: AdminPrincipal, daemon: DaemonDep) -> Response:
    daemon.tenants.revoke_key(principal, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

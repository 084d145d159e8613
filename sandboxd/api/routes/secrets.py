"""Secrets: put, list and delete. Values go in and never come out."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response, status

from sandboxd.api.deps import CurrentPrincipal, DaemonDep
from sandboxd.models import PutSecret, SecretList, SecretOut
from sandboxd.store import SecretRecord

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])


def secret_out(record: SecretRecord) -> SecretOut:
    return SecretOut(
        name=record.name,
        hosts=record.hosts,
        inject=record.inject,
        allow_in_body=record.allow_in_body,
        allow_in_query=record.allow_in_query,
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        updated_at=datetime.fromtimestamp(record.updated_at, UTC),
    )


@router.put("/{name}")
async def put_secret(
    name: str, body: PutSecret, principal: CurrentPrincipal, daemon: DaemonDep, response: Response
) -> SecretOut:
    record, created = daemon.secrets.put(principal, name, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return secret_out(record)


@router.get("")
async def list_secrets(principal: CurrentPrincipal, daemon: DaemonDep) -> SecretList:
    return SecretList(secrets=[secret_out(r) for r in daemon.secrets.list(principal)])


@router.get("/{name}")
async def get_secret(name: str, principal: CurrentPrincipal, daemon: DaemonDep) -> SecretOut:
    return secret_out(daemon.secrets.get(principal, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_secret(name: str, principal: CurrentPrincipal, daemon: DaemonDep) -> Response:
    daemon.secrets.delete(principal, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

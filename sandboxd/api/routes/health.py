"""Liveness without authentication: says the daemon is up, nothing about any tenant."""

from __future__ import annotations

from fastapi import APIRouter

from sandboxd.api.deps import DaemonDep

router = APIRouter(tags=["health"])


@router.get("/v1/health")
async def health(daemon: DaemonDep) -> dict[str, object]:
    return {"ok": True, "version": "0.1.0", "warnings": list(daemon.warnings)}

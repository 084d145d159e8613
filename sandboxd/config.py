"""The one settings object of sandboxd.

Built once at start-up (from ``SANDBOXD_*`` environment variables, or arguments in
tests) and passed down explicitly; nothing reads the environment behind its back.
Every field is listed, with its meaning, in README.md's configuration reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sandboxd"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOXD_", extra="forbid", frozen=True)

    # Where the daemon listens. Loopback unless an operator deliberately opens it.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)

    # State: SQLite database, supervisor sockets, CA and keys. Created 0700.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # Where per-sandbox supervisor socket directories go (default <data_dir>/run). They are
    # bind-mounted into sandboxes by path, so when sandboxd itself runs in a container this
    # must be a host path mounted at the same place.
    socket_dir: Path | None = None

    # The admin key to register on first start; when unset one is generated and printed once.
    api_key: SecretStr | None = None

    # The image used when a create request names none.
    default_image: str = "sandboxd/sandbox:latest"
    # An OCI runtime registered with the Docker engine (e.g. "runsc" for gVisor); None = engine default.
    container_runtime: str | None = None

    # Limits a sandbox gets when its create request names none ...
    default_cpus: float = Field(1.0, gt=0)
    default_memory_mb: int = Field(1024, ge=32)
    default_pids: int = Field(512, ge=16)
    default_nofile: int = Field(4096, ge=64)
    # ... and the most a request may ask for.
    max_cpus: float = Field(default_factory=lambda: float(os.cpu_count() or 1), gt=0)
    max_memory_mb: int = Field(16384, ge=32)
    max_pids: int = Field(8192, ge=16)
    max_nofile: int = Field(1 << 20, ge=64)
    max_disk_gb: int = Field(256, ge=1)

    # Exec: the default and the longest allowed timeout, and the output kept per stream.
    exec_default_timeout_s: float = Field(300.0, gt=0)
    exec_max_timeout_s: float = Field(86400.0, gt=0)
    exec_max_output_bytes: int = Field(1 * MiB, ge=1024)
    exec_output_cap_bytes: int = Field(16 * MiB, ge=1024)

    # The largest JSON body accepted; file and archive uploads are streamed and have their own cap.
    max_request_bytes: int = Field(1 * MiB, ge=1024)
    max_upload_bytes: int = Field(10 * 1024 * MiB, ge=1024)
    # MCP tool calls carry file contents inline (write_file), so they may be larger than API bodies.
    mcp_max_request_bytes: int = Field(32 * MiB, ge=1024)

    # What happens to a sandbox left alone, unless it or its tenant says otherwise. Hibernating
    # keeps every byte and wakes on the next call; deleting is never a server default.
    idle_timeout_s: int | None = Field(1800, gt=0)
    idle_action: Literal["pause", "hibernate"] = "hibernate"
    max_lifetime_s: int | None = Field(None, gt=0)

    # How long a new or restarted sandbox may take before its supervisor answers.
    supervisor_start_timeout_s: float = Field(20.0, gt=0)

    # --- egress (sandboxd.egress): the egress proxy is a sandbox's only way out ---
    # "local": sandboxd runs mitmdump itself, on the sandbox network's gateway address;
    # "external": a proxy run elsewhere (docker compose) at egress_proxy_url;
    # "off": sandboxes get no network at all (and cannot use secrets).
    egress_mode: Literal["local", "external", "off"] = "local"
    # Local mode: the port mitmdump listens on (on the gateway address only).
    egress_proxy_port: int = Field(3128, ge=1, le=65535)
    # External mode: the proxy as sandboxes reach it, e.g. http://egress-proxy:3128.
    egress_proxy_url: str | None = None
    # The sandbox network; default sandboxd-egress-<instance id>, created by sandboxd. In external
    # mode, the (internal) network the proxy is attached to.
    egress_network: str | None = None
    # Local mode: install host firewall rules on the sandbox bridge (needs root; warns without).
    egress_firewall: bool = True
    # CA bundle the proxy verifies upstream servers against; default the system bundle.
    egress_upstream_ca_bundle: Path | None = None
    # The mitmdump executable; default the one next to this Python, else the one on PATH.
    egress_mitmdump: Path | None = None
    # The proxy's files (CA, state, audit); default <data_dir>/egress. An external proxy mounts
    # this directory and nothing else of the data directory.
    egress_data_dir: Path | None = None
    # The proxy's audit file is rotated past this size, once ingested.
    egress_audit_rotate_bytes: int = Field(64 * MiB, ge=1024)

    @field_validator("api_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # SANDBOXD_API_KEY= (empty, as docker compose passes an unset variable) means "not given".
        return None if value == "" else value

    @field_validator("data_dir", "socket_dir", "egress_data_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> Settings:
        if self.default_cpus > self.max_cpus:
            raise ValueError("default_cpus must not exceed max_cpus")
        if self.default_memory_mb > self.max_memory_mb:
            raise ValueError("default_memory_mb must not exceed max_memory_mb")
        if self.default_pids > self.max_pids:
            raise ValueError("default_pids must not exceed max_pids")
        if self.api_key is not None and len(self.api_key.get_secret_value()) < 32:
            raise ValueError("SANDBOXD_API_KEY must be at least 32 characters; leave it unset to get a generated key")
        if self.egress_mode == "external" and not self.egress_proxy_url:
            raise ValueError("egress_mode 'external' needs SANDBOXD_EGRESS_PROXY_URL (how sandboxes reach the proxy)")
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "sandboxd.db"

    @property
    def egress_dir(self) -> Path:
        """The proxy's files: CA, state file and key, audit file, log. The one directory to share with an external proxy."""
        return self.egress_data_dir or self.data_dir / "egress"

    @property
    def socket_root(self) -> Path:
        """Per-sandbox socket directories live here; kept short because unix socket paths are capped at 108 bytes."""
        return self.socket_dir or self.data_dir / "run"

"""Controller settings: one pydantic model, read from a YAML file, then ``TRUEUP_*`` environment
variables, then command-line flags (each later source wins).

Used by `trueup run`. Every key is documented in the README ("Configuration"); unknown keys are
errors, like in manifests. Environment variables are the upper-cased key with ``TRUEUP_``
(``TRUEUP_INTERVAL=1m``); list values in the environment are comma-separated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.desired.policy import Policy, parse_port_range
from controller.errors import ConfigError
from controller.labels import check_instance
from controller.manifests.models import Duration, Size
from controller.notify.kinds import KINDS, Kind
from controller.source.hostvars import ComposeHost


class DestinationSettings(BaseModel):
    """One place messages go: a signed JSON webhook, or an Apprise URL (chat, push, mail)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    type: Literal["webhook", "apprise"]
    url_file: Path
    """A file holding the URL (URLs carry tokens, so never the config text itself)."""
    secret_file: Path | None = None
    """webhook: the HMAC-SHA256 key of the ``X-Trueup-Signature`` header."""
    events: tuple[Kind, ...] = KINDS
    min_severity: Literal["info", "warning", "error"] = "info"
    max_per_minute: int = Field(default=20, ge=1, le=600)
    timeout: Duration = 10.0


class CommitStatusSettings(BaseModel):
    """Commit statuses posted to the git host (provider from the repo URL unless given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["github", "gitlab", "gitea"] | None = None
    token_file: Path
    api_url: str | None = None
    """The API's base (``https://api.github.com``, ``https://gitlab.example/api/v4``,
    ``https://git.example/api/v1``); default: from the repo URL."""
    repo_url: str | None = None
    """The repository's web URL when ``repo`` is a local path (owner/name come from it)."""
    timeout: Duration = 10.0


class NotificationSettings(BaseModel):
    """The ``notifications:`` section of the config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destinations: tuple[DestinationSettings, ...] = ()
    commit_status: CommitStatusSettings | None = None
    repeat_after: Duration = 3600.0
    """An unchanged failure is told again at most this often."""
    unreachable_after: Duration = 300.0
    """Git or the engine failing for this long is an ``unreachable`` event."""
    external_url: str | None = None
    """The dashboard's external URL: commit statuses link to its pass page."""

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: tuple[DestinationSettings, ...]) -> tuple[DestinationSettings, ...]:
        names = [d.name for d in value]
        if len(set(names)) != len(names):
            raise ValueError("destination names must be unique")
        return value


class Settings(BaseModel):
    """Everything `trueup run` needs; defaults suit a single host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = "."
    branch: str | None = None
    path: str = "."
    token_file: Path | None = None
    sync: Literal["auto", "manual"] = "auto"
    """``manual``: a new commit is planned, and applied only once ``POST /api/v1/apply``
    approves it; healing keeps applying the approved revision."""
    interval: Duration = 30.0
    """Resync period: a full pass at least this often (±10% jitter), and the remote poll."""
    listen: str = "127.0.0.1:9090"
    """HTTP address of metrics, probes, the API and webhooks; ``off`` serves nothing."""
    api_token_file: Path | None = None
    """Bearer token of the API's actions (``POST /api/v1/reconcile``, suspend, resume,
    apply); without it they are disabled (403)."""
    webhook_secret_file: Path | None = None
    """Shared secret of the webhooks (``/hooks/*``); without it webhooks are refused."""
    api_read_token_file: Path | None = None
    """Bearer token every GET of ``/metrics`` and ``/api/v1/*`` needs (the API token works
    too); without it reads need none. ``/healthz`` and ``/readyz`` stay open."""
    hooks_listen: str | None = None
    """Address serving ``/hooks/*`` alone; when set, ``listen`` no longer serves them."""
    webhook_max_body: Size = Field(default=256 * 1024, ge=1024, le=32 * 1024 * 1024)
    """Largest webhook body accepted (``256Ki``, ``1Mi``, or bytes); larger ones get 413."""
    instance: str = "default"
    state_dir: Path = Path(".trueup")
    runtime: Literal["auto", "docker", "podman", "swarm"] = "auto"
    runtime_url: str | None = None
    """Engine API URL; when set (or ``DOCKER_HOST`` is) it is the only engine tried."""
    swarm: bool = False
    """With ``runtime: auto``, drive Swarm services when the engine is a swarm manager."""
    swarm_registry: str | None = None
    """Swarm: where built images are pushed so every node can pull them (e.g. reg:5000/team)."""
    secrets_dir: Path | None = None
    sops_age_key_file: tuple[Path, ...] = ()
    """Files of age identities (``AGE-SECRET-KEY-1...`` lines) that decrypt the repository's
    SOPS files; a single path or a list (README, "Secrets in git")."""
    concurrency: int = Field(default=4, ge=1, le=64)
    prune: bool = True
    image_keep: int = Field(default=3, ge=0, le=1000)
    """Images trueup built kept per app beyond those in use (older unused ones are removed)."""
    allow_empty: bool = False
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 300.0
    shutdown_grace: Duration = 10.0
    """After SIGTERM, how long an action in flight, then the queued notifications, may finish
    before they are abandoned (the whole stop takes at most this long)."""
    history_keep: int = Field(default=5000, ge=10)
    """How many passes the history keeps (older ones and their actions are deleted)."""
    router: Literal["caddy", "none"] = "none"
    """Reverse proxy kept in step with the ready replicas (none: routes are only computed)."""
    caddy_admin: str = "http://127.0.0.1:2019"
    proxy_listen: str = ":80"
    proxy_https: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    allow_privileged: bool = False
    allow_host_network: bool = False
    allowed_bind_paths: tuple[str, ...] = ()
    allowed_capabilities: tuple[str, ...] = ()
    allowed_host_ports: tuple[str | int, ...] = ()
    """Host ports manifests may publish: ports (``8080``) and ranges (``"8000-9000"``)."""
    allow_volumes: tuple[str, ...] = ()
    """Existing volumes not made by this instance (compose-made, another instance's, made by
    hand, external) that a ``volumeName`` may mount: names or globs (``"shop_*"``)."""
    notifications: NotificationSettings = NotificationSettings()
    """Where pass events and commit statuses go (README, "Notifications")."""
    compose_profiles: tuple[str, ...] = ()
    """Active compose profiles: a service with ``profiles:`` runs only when one is active."""
    compose_vars_dir: Path | None = None
    """Folder of ``<project>.env`` files: each compose project's variables on this host."""
    compose_repo_secrets: bool = False
    """Let compose ``secrets: {file: ...}`` read the committed file (default: the host's
    secrets dir, under the secret's name; a SOPS-encrypted file is read without it)."""

    @field_validator("sops_age_key_file", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str | Path) else value

    @field_validator("allowed_host_ports")
    @classmethod
    def _port_ranges(cls, value: tuple[str | int, ...]) -> tuple[str | int, ...]:
        for item in value:
            parse_port_range(item)
        return value

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        try:
            return check_instance(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("allowed_bind_paths")
    @classmethod
    def _absolute(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"{path!r} must be an absolute host path")
        return value

    def compose(self) -> ComposeHost:
        """What this host gives compose projects (README, "Compose files")."""
        return ComposeHost(
            frozenset(self.compose_profiles), self.compose_vars_dir, self.compose_repo_secrets
        )

    def policy(self) -> Policy:
        return Policy(
            allow_privileged=self.allow_privileged,
            allow_host_network=self.allow_host_network,
            allowed_capabilities=frozenset(self.allowed_capabilities),
            allowed_bind_paths=self.allowed_bind_paths,
            allowed_host_ports=tuple(parse_port_range(p) for p in self.allowed_host_ports),
            allow_volumes=self.allow_volumes,
        )


_LIST_KEYS = {
    "allow_volumes", "allowed_bind_paths", "allowed_capabilities", "allowed_host_ports",
    "compose_profiles", "sops_age_key_file",
}  # fmt: skip


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``TRUEUP_<KEY>`` variables."""
    values: dict[str, Any] = {}
    for key in Settings.model_fields:
        if key == "notifications":  # a nested section: the config file only
            continue
        raw = env.get(f"TRUEUP_{key.upper()}")
        if raw is None:
            continue
        values[key] = [v.strip() for v in raw.split(",") if v.strip()] if key in _LIST_KEYS else raw
    return values


def load_settings(
    config_file: Path | None,
    overrides: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
) -> Settings:
    """File, then environment, then ``overrides`` (flags; None values are ignored)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{config_file}: expected a mapping of settings")
        values.update({str(k).replace("-", "_"): v for k, v in raw.items()})
    values.update(from_environment(os.environ if env is None else env))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        where = f" in {config_file}" if config_file else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from exc

"""The typed groups a command reads its options into, and the typed reads they are built with.

Click hands a command its values as a mapping (`Params`: each option's destination, see
`controller.cli.options`, and the value click converted). The frozen groups here
(`EngineOptions`, `SourceOptions`, `PolicyOptions`, `RouterOptions`) read them with checked
types, and each command group builds its own options object from them, so the commands work on
typed objects only. A value of another type than declared is a bug in the declaration: the reads
raise TypeError naming the option.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.desired.policy import Policy
from controller.source.hostvars import ComposeHost

#: What click passes a command: each option's destination and its converted value.
Params = Mapping[str, object]


def text(params: Params, key: str) -> str:
    value = params[key]
    if not isinstance(value, str):
        raise TypeError(f"option {key}: expected text, got {value!r}")
    return value


def optional_text(params: Params, key: str) -> str | None:
    return None if params.get(key) is None else text(params, key)


def path(params: Params, key: str) -> Path:
    value = params[key]
    if not isinstance(value, Path):
        raise TypeError(f"option {key}: expected a path, got {value!r}")
    return value


def optional_path(params: Params, key: str) -> Path | None:
    return None if params.get(key) is None else path(params, key)


def flag(params: Params, key: str, default: bool | None = None) -> bool:
    """The flag ``key``; ``default`` when the command has no such option."""
    if default is not None and key not in params:
        return default
    value = params[key]
    if not isinstance(value, bool):
        raise TypeError(f"option {key}: expected a flag, got {value!r}")
    return value


def integer(params: Params, key: str) -> int:
    value = optional_int(params, key)
    if value is None:
        raise TypeError(f"option {key}: expected a number, got None")
    return value


def optional_int(params: Params, key: str) -> int | None:
    value = params.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"option {key}: expected a number, got {value!r}")
    return value


def texts(params: Params, key: str) -> tuple[str, ...]:
    value = params[key]
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"option {key}: expected a list of text, got {value!r}")
    return tuple(str(v) for v in value)


def paths(params: Params, key: str) -> tuple[Path, ...]:
    """A repeatable path option (empty when the command has no such option)."""
    value = params.get(key, ())
    if not isinstance(value, tuple) or not all(isinstance(v, Path) for v in value):
        raise TypeError(f"option {key}: expected a list of paths, got {value!r}")
    return tuple(value)


def port_ranges(params: Params, key: str) -> tuple[tuple[int, int], ...]:
    value = params[key]
    if not isinstance(value, tuple):
        raise TypeError(f"option {key}: expected port ranges, got {value!r}")
    ranges: list[tuple[int, int]] = []
    for item in value:
        if not (isinstance(item, tuple) and len(item) == 2 and all(type(n) is int for n in item)):
            raise TypeError(f"option {key}: expected port ranges, got {value!r}")
        ranges.append((item[0], item[1]))
    return tuple(ranges)


@dataclass(frozen=True)
class EngineOptions:
    """``--instance``, ``--state-dir``, ``--runtime``, ``--runtime-url``, ``--swarm``,
    ``--swarm-registry``."""

    instance: str
    state_dir: Path
    runtime: str
    runtime_url: str | None
    swarm: bool
    swarm_registry: str | None

    @classmethod
    def read(cls, params: Params) -> EngineOptions:
        return cls(
            instance=text(params, "instance"),
            state_dir=path(params, "state_dir"),
            runtime=text(params, "runtime"),
            runtime_url=optional_text(params, "runtime_url"),
            swarm=flag(params, "swarm"),
            swarm_registry=optional_text(params, "swarm_registry"),
        )


@dataclass(frozen=True)
class SourceOptions:
    """``--repo``, ``--path``, ``--branch``, ``--rev``, ``--token-file``."""

    repo: str
    path: str
    branch: str | None
    rev: str | None
    token_file: Path | None

    @classmethod
    def read(cls, params: Params) -> SourceOptions:
        return cls(
            repo=text(params, "repo"),
            path=text(params, "path"),
            branch=optional_text(params, "branch"),
            rev=optional_text(params, "rev"),
            token_file=optional_path(params, "token_file"),
        )


@dataclass(frozen=True)
class PolicyOptions:
    """``--secrets-dir``, ``--sops-age-key-file`` and the host powers (``--allow-*``)."""

    secrets_dir: Path | None
    allow_privileged: bool
    allow_host_network: bool
    allowed_bind_paths: tuple[str, ...]
    allowed_capabilities: tuple[str, ...]
    allowed_host_ports: tuple[tuple[int, int], ...]
    sops_age_key_files: tuple[Path, ...] = ()
    allow_volumes: tuple[str, ...] = ()

    @classmethod
    def read(cls, params: Params) -> PolicyOptions:
        return cls(
            secrets_dir=optional_path(params, "secrets_dir"),
            sops_age_key_files=paths(params, "sops_age_key_file"),
            allow_privileged=flag(params, "allow_privileged"),
            allow_host_network=flag(params, "allow_host_network"),
            allowed_bind_paths=texts(params, "allowed_bind_paths"),
            allowed_capabilities=texts(params, "allowed_capabilities"),
            allowed_host_ports=port_ranges(params, "allowed_host_ports"),
            allow_volumes=texts(params, "allow_volumes") if "allow_volumes" in params else (),
        )

    def policy(self) -> Policy:
        return Policy(
            allow_privileged=self.allow_privileged,
            allow_host_network=self.allow_host_network,
            allowed_capabilities=frozenset(self.allowed_capabilities),
            allowed_bind_paths=self.allowed_bind_paths,
            allowed_host_ports=self.allowed_host_ports,
            allow_volumes=self.allow_volumes,
        )


@dataclass(frozen=True)
class ComposeOptions:
    """``--compose-profile``, ``--compose-vars-dir``, ``--compose-repo-secrets``."""

    profiles: tuple[str, ...] = ()
    vars_dir: Path | None = None
    repo_secrets: bool = False

    @classmethod
    def read(cls, params: Params) -> ComposeOptions:
        if "compose_profiles" not in params:
            return cls()
        return cls(
            profiles=texts(params, "compose_profiles"),
            vars_dir=optional_path(params, "compose_vars_dir"),
            repo_secrets=flag(params, "compose_repo_secrets"),
        )

    def host(self) -> ComposeHost:
        return ComposeHost(frozenset(self.profiles), self.vars_dir, self.repo_secrets)


@dataclass(frozen=True)
class RouterOptions:
    """``--router``, ``--caddy-admin``, ``--proxy-listen``, ``--proxy-https``."""

    router: str
    caddy_admin: str
    proxy_listen: str
    proxy_https: bool

    @classmethod
    def read(cls, params: Params) -> RouterOptions:
        return cls(
            router=text(params, "router"),
            caddy_admin=text(params, "caddy_admin"),
            proxy_listen=text(params, "proxy_listen"),
            proxy_https=flag(params, "proxy_https"),
        )

"""Every command-line option, declared once, and the decorators that put them on commands.

An `Option` has two forms. Its plain form (``@INSTANCE``) carries the default and the
``TRUEUP_*`` variable the one-shot commands use. Its settings form (``INSTANCE.setting``) is
the one of `trueup run`: no default and no variable, because `controller.settings` layers the
config file, the ``TRUEUP_*`` environment and then the flags given, so a flag not given must
arrive as None. Each option's destination is its settings key (``--path`` is ``path``,
``--allow-bind`` is ``allowed_bind_paths``) in both forms.

The README's "common:" options are `COMMON`: every command is decorated with it, so one set of
flags serves them all, and a command ignores those it has no use for. `reads` hands a command
one typed object instead of click's mapping of values (see `controller.cli.groups`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

from controller.cli.groups import Params
from controller.desired.policy import parse_port_range
from controller.errors import TrueupError

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")
Callback = Callable[[click.Context, click.Parameter, object], object]


class Option:
    """One option: its flags, help and click attributes, and the two forms it is used in."""

    def __init__(
        self,
        *decls: str,
        help: str,
        default: object = None,
        envvar: str | None = None,
        show_default: bool = False,
        type: click.Path | click.Choice[str] | None = None,
        is_flag: bool | None = None,
        multiple: bool = False,
        callback: Callback | None = None,
        convert: Callback | None = None,
        setting_type: click.Path | None = None,
    ) -> None:
        self.decls = decls
        self.help = help
        self.default = default
        self.envvar = envvar
        self.show_default = show_default
        self.type = type
        self.is_flag = is_flag
        self.multiple = multiple
        self.callback = callback
        """Checks the value in both forms (e.g. the instance name)."""
        self.convert = convert
        """Parses the value in the plain form only (`trueup run`'s settings parse their own)."""
        self.setting_type = setting_type or type
        """The type of the settings form, when it checks less than the plain form."""

    def with_help(self, help: str) -> Option:
        """The same option, explained for one command whose use of it differs."""
        option = copy.copy(self)
        option.help = help
        return option

    def __call__(self, f: F) -> F:
        """The plain form: default, environment variable, value checked and converted."""
        return click.option(
            *self.decls,
            help=self.help,
            default=self.default,
            envvar=self.envvar,
            show_default=self.show_default,
            type=self.type,
            is_flag=self.is_flag,
            multiple=self.multiple,
            callback=self.convert or self.callback,
        )(f)

    def setting(self, f: F) -> F:
        """The form of `trueup run`: None when not given (no default, no environment
        variable), so the value of the config file or of ``TRUEUP_<KEY>`` stays."""
        return click.option(
            *self.decls,
            help=self.help,
            default=None,
            type=self.setting_type,
            is_flag=self.is_flag,
            multiple=self.multiple,
            callback=_none_if_empty if self.multiple else self.callback,
        )(f)


def _none_if_empty(ctx: click.Context, param: click.Parameter, value: object) -> object:
    return value or None


def options(*groups: Sequence[Option], settings: bool = False) -> Callable[[F], F]:
    """A decorator that gives a command every option of ``groups``, listed in ``--help`` in
    that order: their plain form, or with ``settings`` the form of `trueup run`."""

    def decorate(f: F) -> F:
        for option in reversed([o for group in groups for o in group]):
            f = option.setting(f) if settings else option(f)
        return f

    return decorate


def reads(build: Callable[[Params], T]) -> Callable[[Callable[[T], None]], Callable[..., None]]:
    """Turn ``command(opts)`` into the callback click calls with every option's value: the
    values are read into one typed object by ``build`` first."""

    def decorate(command: Callable[[T], None]) -> Callable[..., None]:
        @functools.wraps(command)
        def callback(**params: object) -> None:
            command(build(params))

        return callback

    return decorate


# --- callbacks ---------------------------------------------------------------------------


def checked_instance(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """``--instance`` (or ``TRUEUP_INSTANCE``), checked as the config file's ``instance`` is."""
    from controller.labels import check_instance

    if value is None:
        return None
    try:
        return check_instance(str(value))
    except TrueupError as exc:
        raise click.BadParameter(str(exc)) from exc


def parsed_port_ranges(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """``--allow-host-port 8080`` / ``8000-9000`` as (first, last) pairs."""
    items = value if isinstance(value, tuple) else ()
    try:
        return tuple(parse_port_range(str(v)) for v in items)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


# --- the options -------------------------------------------------------------------------

INSTANCE = Option(
    "--instance",
    default="default",
    envvar="TRUEUP_INSTANCE",
    show_default=True,
    callback=checked_instance,
    help="Controller instance name; instances never touch each other's containers.",
)
STATE_DIR = Option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".trueup"),
    envvar="TRUEUP_STATE_DIR",
    show_default=True,
    help="Where trueup keeps git mirrors, history and locks.",
)
RUNTIME = Option(
    "--runtime",
    type=click.Choice(["auto", "docker", "podman", "swarm"]),
    default="auto",
    envvar="TRUEUP_RUNTIME",
    show_default=True,
    help="Container engine to drive.",
)
RUNTIME_URL = Option(
    "--runtime-url",
    envvar="TRUEUP_RUNTIME_URL",
    help="Engine API URL; when set (or DOCKER_HOST is) the only engine tried (default: "
    "the Docker socket, then Podman's).",
)
SWARM = Option(
    "--swarm/--no-swarm",
    default=False,
    envvar="TRUEUP_SWARM",
    help="With --runtime auto: drive Swarm services when the engine is a swarm manager.",
)
SWARM_REGISTRY = Option(
    "--swarm-registry",
    envvar="TRUEUP_SWARM_REGISTRY",
    help="Swarm: registry to push built images to, so every node can pull them.",
)
REPO = Option(
    "--repo",
    default=".",
    envvar="TRUEUP_REPO",
    show_default=True,
    help="Local path (a repo or a folder inside one) or URL (file://, git://, https://, ssh://).",
)
PATH = Option(
    "--path",
    "path",
    default=".",
    envvar="TRUEUP_PATH",
    show_default=True,
    help="Folder of manifests, relative to the deployment root.",
)
BRANCH = Option("--branch", envvar="TRUEUP_BRANCH", help="Branch to follow.")
REV = Option("--rev", help="Commit, short commit, tag or branch to read.")
TOKEN_FILE = Option(
    "--token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TRUEUP_TOKEN_FILE",
    setting_type=click.Path(path_type=Path),  # run: read (and refused) where it is used
    help="File holding an access token for https remotes.",
)
SECRETS_DIR = Option(
    "--secrets-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="TRUEUP_SECRETS_DIR",
    setting_type=click.Path(path_type=Path),  # run: read (and refused) where it is used
    help="Folder of <name>.env files that secretRefs read (never in git).",
)
SOPS_AGE_KEY_FILE = Option(
    "--sops-age-key-file",
    "sops_age_key_file",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A file of age identities that decrypt the repository's SOPS files; repeatable.",
)
ALLOW_PRIVILEGED = Option(
    "--allow-privileged",
    is_flag=True,
    default=False,
    help="Let manifests run privileged containers.",
)
ALLOW_HOST_NETWORK = Option(
    "--allow-host-network", is_flag=True, default=False, help="Let manifests use networkMode: host."
)
ALLOW_BIND = Option(
    "--allow-bind",
    "allowed_bind_paths",
    multiple=True,
    help="A host path (and what is below it) that manifests may bind-mount; repeatable.",
)
ALLOW_CAP = Option(
    "--allow-cap",
    "allowed_capabilities",
    multiple=True,
    help="A capability manifests may add; repeatable.",
)
ALLOW_HOST_PORT = Option(
    "--allow-host-port",
    "allowed_host_ports",
    multiple=True,
    convert=parsed_port_ranges,
    help="A host port (8080) or range (8000-9000) manifests may publish; repeatable.",
)
ALLOW_VOLUME = Option(
    "--allow-volume",
    "allow_volumes",
    multiple=True,
    help="An existing volume (name or glob, e.g. 'shop_*') not made by this instance that a "
    "volumeName may mount; repeatable.",
)
COMPOSE_PROFILE = Option(
    "--compose-profile",
    "compose_profiles",
    multiple=True,
    help="An active compose profile (services with profiles: run only when one is); repeatable.",
)
COMPOSE_VARS_DIR = Option(
    "--compose-vars-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="TRUEUP_COMPOSE_VARS_DIR",
    setting_type=click.Path(path_type=Path),
    help="Folder of <project>.env files: the host's variables of each compose project.",
)
COMPOSE_REPO_SECRETS = Option(
    "--compose-repo-secrets",
    is_flag=True,
    default=False,
    help="Let compose secrets read committed files (default: the host's secrets dir).",
)
ROUTER = Option(
    "--router",
    type=click.Choice(["caddy", "none"]),
    default="none",
    envvar="TRUEUP_ROUTER",
    show_default=True,
    help="Reverse proxy to keep in step with the ready replicas; none: routes only shown.",
)
CADDY_ADMIN = Option(
    "--caddy-admin",
    default="http://127.0.0.1:2019",
    envvar="TRUEUP_CADDY_ADMIN",
    show_default=True,
    help="Caddy's admin API URL.",
)
PROXY_LISTEN = Option(
    "--proxy-listen",
    default=":80",
    envvar="TRUEUP_PROXY_LISTEN",
    show_default=True,
    help="Address trueup's Caddy server listens on, e.g. :80 or 127.0.0.1:8080.",
)
PROXY_HTTPS = Option(
    "--proxy-https/--no-proxy-https",
    default=False,
    envvar="TRUEUP_PROXY_HTTPS",
    show_default=True,
    help="Let Caddy obtain certificates for the route hosts (listen on :443 then).",
)
OUTPUT = Option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)
WORKTREE = Option(
    "--worktree",
    is_flag=True,
    default=False,
    help="Read the files on disk (uncommitted edits included) instead of a commit.",
)
CONFIG = Option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="TRUEUP_CONFIG",
    help="The controller's settings file (see README, Configuration).",
)
LISTEN = Option(
    "--listen",
    envvar="TRUEUP_LISTEN",
    help="HTTP address of the controller's metrics and API (default: 127.0.0.1:9090).",
)
API_READ_TOKEN_FILE = Option(
    "--api-read-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TRUEUP_API_READ_TOKEN_FILE",
    help="Bearer token that GETs of /metrics and /api/v1/* need (the API token works too).",
)

#: Which engine, for which instance, with which state dir.
ENGINE = (INSTANCE, STATE_DIR, RUNTIME, RUNTIME_URL, SWARM, SWARM_REGISTRY)
#: How a remote repository is fetched (common); `SOURCE` adds where and what to read.
GIT = (BRANCH, TOKEN_FILE)
SOURCE = (REPO, PATH, REV)
#: The host's secrets and the powers over the host manifests may use.
POLICY = (
    SECRETS_DIR,
    SOPS_AGE_KEY_FILE,
    ALLOW_PRIVILEGED,
    ALLOW_HOST_NETWORK,
    ALLOW_BIND,
    ALLOW_CAP,
    ALLOW_HOST_PORT,
    ALLOW_VOLUME,
)
ROUTING = (ROUTER, CADDY_ADMIN, PROXY_LISTEN, PROXY_HTTPS)
#: What the host gives compose projects.
COMPOSE = (COMPOSE_PROFILE, COMPOSE_VARS_DIR, COMPOSE_REPO_SECRETS)
#: The README's "common:" options: every command takes them.
COMMON = (*ENGINE, *GIT, *POLICY, *ROUTING, *COMPOSE)

"""The `trueup` command line (click). A stable contract: scripts and CI depend on its exit codes.

Each command is thin: it parses options, calls the stage functions, renders, and maps trueup's
errors to exit codes. No traceback ever reaches a user; an unexpected one is a bug.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from controller import __version__
from controller.errors import TrueupError

# Exit codes shared by validate / diff / apply (see README, "Command line").
EXIT_OK = 0
EXIT_CHANGES = 1  # diff: changes pending; validate: invalid; apply: an app failed
EXIT_ERROR = 2


def checked_instance(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--instance`` (or ``TRUEUP_INSTANCE``), checked as the config file's ``instance`` is."""
    from controller.labels import check_instance

    if value is None:
        return None
    try:
        return check_instance(value)
    except TrueupError as exc:
        raise click.BadParameter(str(exc)) from exc


def common_options(f: Any) -> Any:
    """Options every command that touches an engine or the state dir accepts."""
    f = click.option(
        "--instance",
        default="default",
        envvar="TRUEUP_INSTANCE",
        show_default=True,
        callback=checked_instance,
        help="Controller instance name; instances never touch each other's containers.",
    )(f)
    f = click.option(
        "--state-dir",
        type=click.Path(path_type=Path),
        default=Path(".trueup"),
        envvar="TRUEUP_STATE_DIR",
        show_default=True,
        help="Where trueup keeps git mirrors, history and locks.",
    )(f)
    f = click.option(
        "--runtime",
        type=click.Choice(["auto", "docker", "podman", "swarm"]),
        default="auto",
        envvar="TRUEUP_RUNTIME",
        show_default=True,
        help="Container engine to drive.",
    )(f)
    f = click.option(
        "--runtime-url",
        default=None,
        envvar="TRUEUP_RUNTIME_URL",
        help="Engine API URL; when set (or DOCKER_HOST is) the only engine tried (default: "
        "the Docker socket, then Podman's).",
    )(f)
    f = click.option(
        "--swarm/--no-swarm",
        default=False,
        envvar="TRUEUP_SWARM",
        help="With --runtime auto: drive Swarm services when the engine is a swarm manager.",
    )(f)
    f = click.option(
        "--swarm-registry",
        default=None,
        envvar="TRUEUP_SWARM_REGISTRY",
        help="Swarm: registry to push built images to, so every node can pull them.",
    )(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trueup")
def main() -> None:
    """trueup keeps the containers on a host matched to the manifests committed in git."""


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print an error for a person and exit with ``code``; never a traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def source_options(f: Any) -> Any:
    """Where manifests come from: a repository (path or URL), a sub-path, a revision."""
    f = click.option(
        "--repo",
        default=".",
        envvar="TRUEUP_REPO",
        show_default=True,
        help="Local path (a repo or a folder inside one) or URL (file://, git://, https://, ssh://).",
    )(f)
    f = click.option(
        "--path",
        "manifest_path",
        default=".",
        envvar="TRUEUP_PATH",
        show_default=True,
        help="Folder of manifests, relative to the deployment root.",
    )(f)
    f = click.option("--branch", default=None, envvar="TRUEUP_BRANCH", help="Branch to follow.")(f)
    f = click.option("--rev", default=None, help="Commit, short commit, tag or branch to read.")(f)
    f = click.option(
        "--token-file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        envvar="TRUEUP_TOKEN_FILE",
        help="File holding an access token for https remotes.",
    )(f)
    return f


def worktree_option(f: Any) -> Any:
    return click.option(
        "--worktree",
        is_flag=True,
        help="Read the files on disk (uncommitted edits included) instead of a commit.",
    )(f)


def display_path(repo: str, name: str) -> str:
    """How to show a manifest file name: relative to the current directory for local repos."""
    local = Path(repo)
    if "://" in repo or not local.exists():
        return name
    try:
        return os.path.relpath(local / name)
    except ValueError:
        return name


@main.command()
@source_options
@worktree_option
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".trueup"),
    envvar="TRUEUP_STATE_DIR",
    show_default=True,
    help="Where git mirrors are kept.",
)
def validate(
    repo: str,
    manifest_path: str,
    branch: str | None,
    rev: str | None,
    token_file: Path | None,
    worktree: bool,
    state_dir: Path,
    **_common: Any,
) -> None:
    """Check the manifests; print every problem as FILE:LINE:COLUMN: message.

    Exit 0 when all are valid, 1 when any is not, 2 when the repository cannot be read.
    """
    from controller.manifests.loader import load_files
    from controller.source import GitSource

    try:
        with GitSource(repo, state_dir=state_dir, branch=branch, token_file=token_file) as source:
            if worktree:
                files = source.read_worktree(manifest_path)
            else:
                files = source.manifest_files(source.resolve(rev).sha, manifest_path)
    except TrueupError as exc:
        fail(str(exc))
        return
    result = load_files(files.files)
    for problem in result.problems:
        shown = display_path(repo, problem.file)
        click.echo(f"{shown}:{problem.line}:{problem.column}: {problem.message}")
    where = f"at {files.revision[:12]}" if files.revision else "in the working tree"
    n_files = len(files.files)
    if result.problems:
        click.echo(
            f"{len(result.problems)} problem(s) in {len(result.failed_files)} of {n_files} "
            f"file(s) {where}; {len(result.apps)} app(s) valid",
            err=True,
        )
        sys.exit(EXIT_CHANGES)
    click.echo(f"{len(result.apps)} app(s) in {n_files} file(s) {where}: valid", err=True)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("schemas"),
    show_default=True,
    help="Folder to write app.v1.json into.",
)
def schema(out: Path, **_common: Any) -> None:
    """Write the JSON Schema of manifest v1 (for editors and CI linters)."""
    from controller.manifests import schema as schema_module

    target = schema_module.write(out)
    click.echo(str(target))


def engine_options(f: Any) -> Any:
    """Options of commands that plan against an engine: secrets and host-power policy."""
    f = click.option(
        "--secrets-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        envvar="TRUEUP_SECRETS_DIR",
        help="Folder of <name>.env files that secretRefs read (never in git).",
    )(f)
    f = click.option(
        "--allow-privileged", is_flag=True, help="Let manifests run privileged containers."
    )(f)
    f = click.option(
        "--allow-host-network", is_flag=True, help="Let manifests use networkMode: host."
    )(f)
    f = click.option(
        "--allow-bind",
        "allow_binds",
        multiple=True,
        help="A host path (and what is below it) that manifests may bind-mount; repeatable.",
    )(f)
    f = click.option(
        "--allow-cap", "allow_caps", multiple=True, help="A capability manifests may add."
    )(f)
    f = click.option(
        "--allow-host-port",
        "allow_host_ports",
        multiple=True,
        callback=_port_ranges,
        help="A host port (8080) or range (8000-9000) manifests may publish; repeatable.",
    )(f)
    f = click.option(
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="Text for people, JSON for scripts.",
    )(f)
    return f


def _port_ranges(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[int, int], ...]:
    from controller.desired.policy import parse_port_range

    try:
        return tuple(parse_port_range(v) for v in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _policy(kw: dict[str, Any]) -> Any:
    from controller.desired.policy import Policy

    return Policy(
        allow_privileged=kw["allow_privileged"],
        allow_host_network=kw["allow_host_network"],
        allowed_capabilities=frozenset(kw["allow_caps"]),
        allowed_bind_paths=tuple(kw["allow_binds"]),
        allowed_host_ports=kw["allow_host_ports"],
    )


def router_options(f: Any) -> Any:
    """Options of commands that read or push routes: which reverse proxy, and where."""
    f = click.option(
        "--router",
        type=click.Choice(["caddy", "none"]),
        default="none",
        envvar="TRUEUP_ROUTER",
        show_default=True,
        help="Reverse proxy to keep in step with the ready replicas; none: routes only shown.",
    )(f)
    f = click.option(
        "--caddy-admin",
        default="http://127.0.0.1:2019",
        envvar="TRUEUP_CADDY_ADMIN",
        show_default=True,
        help="Caddy's admin API URL.",
    )(f)
    f = click.option(
        "--proxy-listen",
        default=":80",
        envvar="TRUEUP_PROXY_LISTEN",
        show_default=True,
        help="Address trueup's Caddy server listens on, e.g. :80 or 127.0.0.1:8080.",
    )(f)
    f = click.option(
        "--proxy-https/--no-proxy-https",
        default=False,
        envvar="TRUEUP_PROXY_HTTPS",
        show_default=True,
        help="Let Caddy obtain certificates for the route hosts (listen on :443 then).",
    )(f)
    return f


#: Options of the groups above that are not on the README's "common:" line.
_NOT_COMMON = frozenset({"repo", "manifest_path", "rev", "output"})


def accept_common_options(command: click.Command) -> click.Command:
    """Give ``command`` the README's "common:" options it does not define itself, so one set
    of flags (a wrapper script, an alias) works with every command; a command ignores the ones
    it has no use for. `trueup run` defines its own (they feed its settings)."""
    probe = click.Command("probe")
    for group in (common_options, source_options, engine_options, router_options):
        group(probe)
    have = {p.name for p in command.params} | _NOT_COMMON
    command.params.extend(p for p in probe.params if p.name not in have)
    return command


async def _pass(kw: dict[str, Any], *, apply: bool, worktree: bool) -> Any:
    from controller.desired.secrets import load_digest_key
    from controller.reconciler import Reconciler
    from controller.routes import connect_router
    from controller.runtime import connect
    from controller.source import GitSource
    from controller.targets import target_for

    with GitSource(
        kw["repo"], state_dir=kw["state_dir"], branch=kw["branch"], token_file=kw["token_file"]
    ) as source:
        engine = connect(
            kw["runtime"],
            kw["runtime_url"],
            instance=kw["instance"],
            swarm=kw["swarm"],
            registry=kw["swarm_registry"],
        )
        target = target_for(engine)
        router = connect_router(
            kw["router"],
            instance=kw["instance"],
            admin_url=kw["caddy_admin"],
            listen=kw["proxy_listen"],
            https=kw["proxy_https"],
        )
        try:
            reconciler = Reconciler(
                source,
                target,
                instance=kw["instance"],
                path=kw["manifest_path"],
                secrets_dir=kw["secrets_dir"],
                policy=_policy(kw),
                router=router,
                cache_dir=kw["state_dir"],
                digest_key=load_digest_key(kw["state_dir"]),
            )
            return await reconciler.run_pass(
                rev=kw["rev"],
                worktree=worktree,
                apply=apply,
                prune=kw.get("prune", True),
                allow_empty=kw.get("allow_empty", False),
            )
        finally:
            await router.close()
            await target.engine.close()


def _run_pass(kw: dict[str, Any], *, apply: bool, worktree: bool = False) -> Any:
    import asyncio

    from controller.daemon import logs

    logs.configure(level="info" if apply and kw["output"] == "text" else "warning")
    try:
        return asyncio.run(_pass(kw, apply=apply, worktree=worktree))
    except TrueupError as exc:
        fail(str(exc))


def _show_plan(result: Any, kw: dict[str, Any]) -> None:
    from controller.cli import render

    if kw["output"] == "json":
        click.echo(render.plan_json_text(result.plan, result.problems))
        return
    colour = sys.stdout.isatty()
    click.echo(
        render.plan_text(
            result.plan,
            result.problems,
            colour=colour,
            file_label=lambda name: display_path(kw["repo"], name),
        )
    )


def _show_routes(result: Any, kw: dict[str, Any], *, applied: bool) -> None:
    """The route table (text output) and how the routes stage went (stderr with json)."""
    from controller.cli import render

    table = result.routes or ()
    to_stderr = kw["output"] == "json"
    if not to_stderr and table:
        click.echo(render.routes_text(table))
    if kw["router"] == "none":
        if table:
            click.echo(f"routes: {len(table)} computed, not pushed (--router none)", err=to_stderr)
        return
    if result.routes_error is not None:
        if applied:
            click.echo(
                f"FAILED routes: {result.routes_error}; the proxy serves stale routes "
                "(containers were reconciled; the next pass pushes them again)",
                err=to_stderr,
            )
        else:
            click.echo(f"warning: routes not compared: {result.routes_error}", err=True)
    elif applied:
        state = "pushed" if result.routes_pushed else "unchanged"
        click.echo(f"{'ok':6} routes: {len(table)} route(s) in caddy ({state})", err=to_stderr)


@main.command()
@common_options
@source_options
@worktree_option
@engine_options
@router_options
def diff(**kw: Any) -> None:
    """Show what apply would change; change nothing.

    Exit 0 in sync, 1 changes pending (or deleting every app refused: out of sync, nothing
    deleted), 2 error (including a manifest that failed to load).
    With --router caddy, routes that differ from what Caddy serves are changes too (action
    "route" when nothing else about the app changes); an unreachable Caddy is a warning.
    """
    result = _run_pass(kw, apply=False, worktree=kw["worktree"])
    _show_plan(result, kw)
    _show_routes(result, kw, applied=False)
    if result.problems:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_OK if result.plan.in_sync else EXIT_CHANGES)


@main.command()
@common_options
@source_options
@engine_options
@router_options
@click.option(
    "--prune/--no-prune", default=True, show_default=True, help="Remove apps gone from git."
)
@click.option("--allow-empty", is_flag=True, help="Allow a pass that deletes every app.")
def apply(**kw: Any) -> None:
    """Make the host match git at the branch tip (or --rev), once.

    Exit 0 when everything converged, 1 when an app failed, the routes could not be pushed
    (the containers still converge) or deleting every app was refused (no --allow-empty), 2 on
    an error (a manifest that failed to load is an error: the valid apps are applied first).
    """
    result = _run_pass(kw, apply=True)
    _show_plan(result, kw)
    for outcome in result.outcomes:
        mark = "ok" if outcome.ok else "FAILED"
        line = f"{mark:6} {outcome.app} {outcome.action} ({outcome.duration_s:.1f}s)"
        if not outcome.ok:
            line += f": {outcome.message}"
        click.echo(line, err=kw["output"] == "json")
    for change in result.plan.refused:  # still running although git no longer declares them
        click.echo(f"REFUSED {change.app} delete: {change.reasons[-1]}", err=kw["output"] == "json")
    _show_routes(result, kw, applied=True)
    if result.problems:
        sys.exit(EXIT_ERROR)
    failed = result.failed or result.routes_error or result.plan.refused
    sys.exit(EXIT_CHANGES if failed else EXIT_OK)


@main.command()
@common_options
@click.option(
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Text for people, JSON for scripts.",
)
@click.option(
    "--listen",
    default=None,
    envvar="TRUEUP_LISTEN",
    help="Address of a running controller's API (default: the config's, else the one it "
    "recorded in the state dir, else 127.0.0.1:9090).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    envvar="TRUEUP_CONFIG",
    help="The controller's settings file (its listen address and read token are used).",
)
@click.option(
    "--api-read-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar="TRUEUP_API_READ_TOKEN_FILE",
    help="The controller's read token (default: the config's api_read_token_file).",
)
def status(**kw: Any) -> None:
    """Sync, health and replicas of this instance's apps.

    Asks the running controller's API when one answers for this instance, else reads the
    status it last wrote to the state dir, else asks the container engine alone.
    """
    import asyncio

    from controller.daemon import status as status_module
    from controller.daemon.logs import configure
    from controller.runtime import connect
    from controller.targets import target_for

    configure()  # log events go to stderr; stdout carries only the status

    async def run() -> list[Any]:
        engine = connect(
            kw["runtime"],
            kw["runtime_url"],
            instance=kw["instance"],
            swarm=kw["swarm"],
            registry=kw["swarm_registry"],
        )
        target = target_for(engine)
        try:
            return await status_module.collect(target)
        finally:
            await target.engine.close()

    live = _api_status(_api_urls(kw), kw["instance"], _read_token(kw))
    if live is None:
        live = _controller_status(kw["state_dir"])
    if live is not None:
        apps = live
    else:
        try:
            apps = asyncio.run(run())
        except TrueupError as exc:
            fail(str(exc))
            return
    if kw["output"] == "json":
        click.echo(status_module.render_json(apps))
    else:
        click.echo(status_module.render_text(apps))


def _api_urls(kw: dict[str, Any]) -> list[str]:
    """Where a running controller's API may be: flag/env/config, the state dir's record, default."""
    import json

    listens: list[str] = []
    if kw["listen"]:
        listens.append(kw["listen"])
    elif kw["config_file"] is not None:
        from controller.settings import load_settings

        try:
            listens.append(load_settings(kw["config_file"], {}).listen)
        except TrueupError as exc:
            fail(str(exc))
    urls = [_listen_url(listen) for listen in listens]
    try:
        recorded = json.loads((kw["state_dir"] / "status.json").read_text(encoding="utf-8"))
        urls.append(str(recorded["api"]) if recorded.get("api") else None)
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    if not listens:
        urls.append(_listen_url("127.0.0.1:9090"))
    return [u for u in dict.fromkeys(urls) if u]


def _read_token(kw: dict[str, Any]) -> bytes | None:
    """The token to read the API with: ``--api-read-token-file``, else the config's."""
    from controller.http.server import read_secret

    path = kw["api_read_token_file"]
    if path is None and kw["config_file"] is not None:
        from controller.settings import load_settings

        try:
            path = load_settings(kw["config_file"], {}).api_read_token_file
        except TrueupError as exc:
            fail(str(exc))
    try:
        return read_secret(path, "API read token")
    except TrueupError as exc:
        fail(str(exc))
        return None


def _listen_url(listen: str) -> str | None:
    from controller.http.server import parse_listen

    if listen == "off":
        return None
    try:
        host, port = parse_listen(listen)
    except TrueupError:
        return None
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _api_status(urls: list[str], instance: str, token: bytes | None = None) -> list[Any] | None:
    """Apps as the first API that answers for ``instance`` reports them; None if none does."""
    import json
    import urllib.request

    headers = {"Authorization": f"Bearer {token.decode('utf-8', 'replace')}"} if token else {}
    for url in urls:
        try:
            request = urllib.request.Request(f"{url}/api/v1/status", headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                doc = json.loads(response.read())
            if doc.get("instance") != instance:
                continue  # another instance's controller on that address
            return _apps_from_json(doc)
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _apps_from_json(doc: Any) -> list[Any] | None:
    from controller.daemon.status import AppStatus

    try:
        return [
            AppStatus(
                name=a["name"], sync=a["sync"], health=a["health"], revision=a["revision"],
                desired=a["replicas"]["desired"], ready=a["replicas"]["ready"],
                message=a["message"],
            )
            for a in doc["apps"]
        ]  # fmt: skip
    except (KeyError, TypeError):
        return None


def _controller_status(state_dir: Path) -> list[Any] | None:
    """The running controller's view (sync included), when one holds ``state_dir``."""
    import json

    from controller.daemon.lock import holder

    status_file = state_dir / "status.json"
    if holder(state_dir) is None or not status_file.exists():
        return None
    try:
        doc = json.loads(status_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return _apps_from_json(doc)


@main.command()
@common_options
@click.argument("app")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Last N lines per replica.")
def logs(app: str, follow: bool, tail: int | None, **kw: Any) -> None:
    """Print the output of every replica of APP, each line prefixed with its replica."""
    import asyncio

    from controller.daemon.logs import configure
    from controller.daemon.status import app_logs
    from controller.runtime import connect
    from controller.targets import target_for

    configure()  # log events go to stderr; stdout carries only the app's lines

    async def run() -> None:
        engine = connect(
            kw["runtime"],
            kw["runtime_url"],
            instance=kw["instance"],
            swarm=kw["swarm"],
            registry=kw["swarm_registry"],
        )
        target = target_for(engine)
        try:
            async for line in app_logs(target, app, follow=follow, tail=tail):
                click.echo(line)
        finally:
            await target.engine.close()

    try:
        asyncio.run(run())
    except TrueupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    envvar="TRUEUP_CONFIG",
    help="YAML settings file (see README, Configuration); env TRUEUP_* and flags override it.",
)
@click.option("--repo", default=None, help="Local path or URL of the deployment repository.")
@click.option("--branch", default=None, help="Branch to follow (default: HEAD's branch).")
@click.option("--path", default=None, help="Folder of manifests, relative to the root.")
@click.option("--interval", default=None, help="Resync (and remote poll) period, e.g. 30s.")
@click.option("--listen", default=None, help="HTTP address for metrics and the API.")
@click.option(
    "--instance", default=None, callback=checked_instance, help="Controller instance name."
)
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="State dir.")
@click.option("--runtime", type=click.Choice(["auto", "docker", "podman", "swarm"]), default=None)
@click.option(
    "--runtime-url", default=None, help="Engine API URL; when set, the only engine tried."
)
@click.option("--router", type=click.Choice(["caddy", "none"]), default=None, help="Proxy.")
@click.option("--caddy-admin", default=None, help="Caddy's admin API URL.")
@click.option("--proxy-listen", default=None, help="Address of trueup's Caddy server.")
@click.option("--swarm/--no-swarm", default=None, help="auto picks Swarm on a swarm manager.")
@click.option("--swarm-registry", default=None, help="Registry for images built for Swarm.")
@click.option("--secrets-dir", type=click.Path(path_type=Path), default=None)
@click.option("--token-file", type=click.Path(path_type=Path), default=None)
@click.option("--proxy-https/--no-proxy-https", default=None, help="Caddy manages certificates.")
@click.option("--allow-privileged", is_flag=True, default=None, help="Allow privileged: true.")
@click.option("--allow-host-network", is_flag=True, default=None, help="Allow networkMode: host.")
@click.option(
    "--allow-bind",
    "allowed_bind_paths",
    multiple=True,
    callback=lambda c, p, v: v or None,
    help="A host path manifests may bind-mount; repeatable (replaces the config's).",
)
@click.option(
    "--allow-cap",
    "allowed_capabilities",
    multiple=True,
    callback=lambda c, p, v: v or None,
    help="A capability manifests may add; repeatable (replaces the config's).",
)
@click.option(
    "--allow-host-port",
    "allowed_host_ports",
    multiple=True,
    callback=lambda c, p, v: v or None,
    help="A host port or range (8000-9000) manifests may publish; repeatable.",
)
@click.option(
    "--api-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Bearer token for POST /api/v1/reconcile (without it, that endpoint is disabled).",
)
@click.option(
    "--webhook-secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Shared secret of the /hooks/* webhooks (without it, webhooks are refused).",
)
@click.option(
    "--api-read-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Bearer token that GETs of /metrics and /api/v1/* need (the API token works too).",
)
@click.option(
    "--hooks-listen",
    default=None,
    help="Serve /hooks/* alone on this address (and no longer on --listen).",
)
@click.option(
    "--webhook-max-body",
    default=None,
    help="Largest webhook body accepted, e.g. 256Ki (the default) or 1Mi.",
)
def run(config_file: Path | None, **flags: Any) -> None:
    """Keep the host converged with git until stopped (SIGTERM/SIGINT exit 0; apps keep running)."""
    import asyncio

    from controller.daemon import logs
    from controller.daemon import run as daemon
    from controller.daemon.lock import StateLock
    from controller.settings import load_settings

    try:
        settings = load_settings(config_file, flags)
    except TrueupError as exc:
        fail(str(exc))
        return
    fmt = settings.log_format
    logs.configure(level=settings.log_level, json=None if fmt == "auto" else fmt == "json")
    lock = StateLock(settings.state_dir)
    try:
        lock.acquire()
    except TrueupError as exc:
        fail(str(exc))
        return
    try:
        asyncio.run(daemon.serve(settings))
    except TrueupError as exc:
        fail(str(exc))
    finally:
        lock.release()


@main.command()
@click.argument("app", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path(".trueup"),
    envvar="TRUEUP_STATE_DIR",
    show_default=True,
)
def history(app: str | None, limit: int, output: str, state_dir: Path, **_common: Any) -> None:
    """Past passes (or, for APP, its actions), newest first."""
    import json
    from datetime import UTC, datetime

    from controller.daemon.history import History

    db = state_dir / "history.db"
    if not db.exists():
        fail(f"no history in {state_dir} (has `trueup run` used this state dir?)")
        return
    store = History(db)
    try:
        rows = store.actions(app, limit=limit) if app else store.passes(limit=limit)
    finally:
        store.close()
    if output == "json":
        click.echo(json.dumps({"actions" if app else "passes": rows}, indent=2))
        return

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")

    for row in rows:
        rev = (row["revision"] or "-")[:12]
        if app:
            message = row["message"].splitlines()[0] if row["message"] else ""
            click.echo(
                f"{when(row['started_at'])}  {rev:12}  {row['kind']:7} {row['result']:7} "
                f"{row['duration_s']:6.1f}s  {message}"
            )
        else:
            click.echo(
                f"{when(row['started_at'])}  {rev:12}  {row['result']:8} "
                f"changes={row['changes']} failed={row['failed']} {row['duration_s']:.2f}s "
                f"trigger={row['trigger']}"
            )


for _command in main.commands.values():  # every command takes the common options (README)
    if _command.name != "run":
        accept_common_options(_command)

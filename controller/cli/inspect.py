"""The commands that look and change nothing: `status`, `logs` and `history`.

`status` asks, in this order, a running controller's API for this instance, the status that
controller last wrote to the state dir, and finally the engine alone (no sync then). `logs`
streams an app's replicas from the engine; `history` reads the state dir's pass history.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from controller.cli.exits import fail
from controller.cli.groups import (
    EngineOptions,
    Params,
    flag,
    integer,
    optional_int,
    optional_path,
    optional_text,
    path,
    text,
)
from controller.cli.options import (
    API_READ_TOKEN_FILE,
    COMMON,
    CONFIG,
    LISTEN,
    OUTPUT,
    options,
    reads,
)
from controller.errors import TrueupError

if TYPE_CHECKING:
    from controller.daemon.status import AppStatus
    from controller.settings import Settings
    from controller.targets.target import Target

T = TypeVar("T")

DEFAULT_API = "127.0.0.1:9090"


@dataclass(frozen=True)
class StatusOptions:
    engine: EngineOptions
    output: str
    listen: str | None
    config_file: Path | None
    api_read_token_file: Path | None
    app: str | None = None

    @classmethod
    def read(cls, params: Params) -> StatusOptions:
        return cls(
            engine=EngineOptions.read(params),
            output=text(params, "output"),
            listen=optional_text(params, "listen"),
            config_file=optional_path(params, "config_file"),
            api_read_token_file=optional_path(params, "api_read_token_file"),
            app=optional_text(params, "app"),
        )


@dataclass(frozen=True)
class LogsOptions:
    engine: EngineOptions
    app: str
    follow: bool
    tail: int | None

    @classmethod
    def read(cls, params: Params) -> LogsOptions:
        return cls(
            engine=EngineOptions.read(params),
            app=text(params, "app"),
            follow=flag(params, "follow"),
            tail=optional_int(params, "tail"),
        )


@dataclass(frozen=True)
class HistoryOptions:
    state_dir: Path
    app: str | None
    limit: int
    output: str

    @classmethod
    def read(cls, params: Params) -> HistoryOptions:
        return cls(
            state_dir=path(params, "state_dir"),
            app=optional_text(params, "app"),
            limit=integer(params, "limit"),
            output=text(params, "output"),
        )


@click.command()
@options(COMMON)
@OUTPUT
@LISTEN.with_help(
    "Address of a running controller's API (default: the config's, else the one it "
    f"recorded in the state dir, else {DEFAULT_API})."
)
@CONFIG.with_help("The controller's settings file (its listen address and read token are used).")
@API_READ_TOKEN_FILE.with_help(
    "The controller's read token (default: the config's api_read_token_file)."
)
@click.argument("app", required=False)
@reads(StatusOptions.read)
def status(opts: StatusOptions) -> None:
    """Sync, health and replicas of this instance's apps (of APP alone when given, with the
    images trueup built for it that are still on the engine, newest first).

    Asks the running controller's API when one answers for this instance, else reads the
    status it last wrote to the state dir, else asks the container engine alone. A
    controller's answer also gives its sync mode (auto or manual), the approved and the
    pending revision (with the apps it changes) and the suspended apps.
    """
    from controller.daemon import status as status_module
    from controller.daemon.logs import configure

    configure()  # log events go to stderr; stdout carries only the status
    engine = opts.engine
    found = _api_status(_api_urls(opts), engine.instance, _read_token(opts))
    if found is None:
        found = _controller_status(engine.state_dir)
    apps, doc = found if found is not None else (_engine_status(engine), {})
    sync = {k: doc[k] for k in SYNC_KEYS if k in doc}
    if opts.app is not None:
        _show_app(opts, [a for a in apps if a.name == opts.app])
    elif opts.output == "json":
        click.echo(
            json.dumps(
                {**json.loads(status_module.render_json(apps)), **sync}, indent=2, sort_keys=True
            )
        )
    else:
        click.echo(status_module.render_text(apps))
        for line in sync_lines(sync):
            click.echo(line)


SYNC_KEYS = ("sync", "approved_revision", "pending", "suspended")


def sync_lines(sync: Mapping[str, Any]) -> list[str]:
    """What `trueup status` prints under the table about the sync mode (a running
    controller's; nothing when the engine alone answered)."""
    if "sync" not in sync:
        return []
    approved = str(sync.get("approved_revision") or "none")[:12]
    lines = [f"sync: {sync['sync']} (approved revision {approved})"]
    pending = sync.get("pending")
    if isinstance(pending, dict):
        apps = ", ".join(pending.get("apps") or []) or "no app changes"
        lines.append(
            f"pending: {str(pending.get('revision'))[:12]} {pending.get('subject', '')!r} "
            f"changes {apps}; approve with POST /api/v1/apply"
        )
    if sync.get("suspended"):
        lines.append(f"suspended (trueup resume APP): {', '.join(sync['suspended'])}")
    return lines


def _show_app(opts: StatusOptions, apps: list[AppStatus]) -> None:
    """`trueup status APP`: the app's line, then its retained images (from the engine)."""
    from controller.daemon import status as status_module

    images = _engine_images(opts.engine, str(opts.app))
    if opts.output == "json":
        doc = json.loads(status_module.render_json(apps))
        click.echo(json.dumps({**doc, "images": images}, indent=2, sort_keys=True))
        return
    click.echo(status_module.render_text(apps) if apps else f"no app named {opts.app}")
    click.echo(f"images built for {opts.app} (newest first):" if images else "no images built")
    for image in images:
        used = "  in use" if image["in_use"] else ""
        size = f"{image['size'] / 1e6:.1f} MB"
        click.echo(
            f"  {', '.join(image['tags']) or image['id'][:19]}  {image['created']}  {size}{used}"
        )


def _engine_images(engine: EngineOptions, app: str) -> list[dict[str, Any]]:
    """The images trueup built for ``app`` on the engine (`targets.images.app_images`)."""
    from controller.targets.images import app_images

    return _on_target(engine, lambda target: app_images(target.engine, app))


def _engine_status(engine: EngineOptions) -> list[AppStatus]:
    """The apps as the engine alone shows them; an engine error exits 2."""
    from controller.daemon import status as status_module

    return _on_target(engine, status_module.collect)


def _on_target(engine: EngineOptions, use: Callable[[Target], Awaitable[T]]) -> T:
    """What ``use`` answers on the target ``engine`` names (closed after); an engine error
    exits 2."""
    import asyncio

    from controller.cli.connect import open_target

    async def run() -> T:
        target = open_target(engine)
        try:
            return await use(target)
        finally:
            await target.engine.close()

    try:
        return asyncio.run(run())
    except TrueupError as exc:
        fail(str(exc))


def _configured(config_file: Path) -> Settings:
    """The controller's settings (its listen address, its read token); a bad one exits 2."""
    from controller.settings import load_settings

    try:
        return load_settings(config_file, {})
    except TrueupError as exc:
        fail(str(exc))


def _api_urls(opts: StatusOptions) -> list[str]:
    """Where a running controller's API may be: flag/env/config, the state dir's record, default."""
    listens: list[str] = []
    if opts.listen:
        listens.append(opts.listen)
    elif opts.config_file is not None:
        listens.append(_configured(opts.config_file).listen)
    urls = [_listen_url(listen) for listen in listens]
    try:
        status_file = opts.engine.state_dir / "status.json"
        recorded = json.loads(status_file.read_text(encoding="utf-8"))
        urls.append(str(recorded["api"]) if recorded.get("api") else None)
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    if not listens:
        urls.append(_listen_url(DEFAULT_API))
    return [u for u in dict.fromkeys(urls) if u]


def _read_token(opts: StatusOptions) -> bytes | None:
    """The token to read the API with: ``--api-read-token-file``, else the config's."""
    from controller.http.server import read_secret

    token_file = opts.api_read_token_file
    if token_file is None and opts.config_file is not None:
        token_file = _configured(opts.config_file).api_read_token_file
    try:
        return read_secret(token_file, "API read token")
    except TrueupError as exc:
        fail(str(exc))


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


def _api_status(
    urls: list[str], instance: str, token: bytes | None
) -> tuple[list[AppStatus], dict[str, Any]] | None:
    """Apps as the first API that answers for ``instance`` reports them, and its whole
    document; None if none does."""
    import urllib.request

    headers = {"Authorization": f"Bearer {token.decode('utf-8', 'replace')}"} if token else {}
    for url in urls:
        try:
            request = urllib.request.Request(f"{url}/api/v1/status", headers=headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                doc = json.loads(response.read())
            if doc.get("instance") != instance:
                continue  # another instance's controller on that address
            apps = _apps_from_json(doc)
            return (apps, doc) if apps is not None else None
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _apps_from_json(doc: object) -> list[AppStatus] | None:
    """The apps of a status document (the API's or the state dir's); None if it is not one."""
    from controller.daemon.status import AppStatus

    if not isinstance(doc, dict):
        return None
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


def _controller_status(state_dir: Path) -> tuple[list[AppStatus], dict[str, Any]] | None:
    """The running controller's view (sync included) and the whole status file, when one
    holds ``state_dir``."""
    from controller.daemon.lock import holder

    status_file = state_dir / "status.json"
    if holder(state_dir) is None or not status_file.exists():
        return None
    try:
        doc = json.loads(status_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    apps = _apps_from_json(doc)
    return (apps, doc) if apps is not None else None


@click.command()
@options(COMMON)
@click.argument("app")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Last N lines per replica.")
@reads(LogsOptions.read)
def logs(opts: LogsOptions) -> None:
    """Print the output of every replica of APP, each line prefixed with its replica."""
    import asyncio

    from controller.cli.connect import open_target
    from controller.daemon.logs import configure
    from controller.daemon.status import app_logs

    configure()  # log events go to stderr; stdout carries only the app's lines

    async def follow() -> None:
        target = open_target(opts.engine)
        try:
            async for line in app_logs(target, opts.app, follow=opts.follow, tail=opts.tail):
                click.echo(line)
        finally:
            await target.engine.close()

    try:
        asyncio.run(follow())
    except TrueupError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        pass


@click.command()
@options(COMMON)
@click.argument("app", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@OUTPUT
@reads(HistoryOptions.read)
def history(opts: HistoryOptions) -> None:
    """Past passes (or, for APP, its actions), newest first."""
    from controller.daemon.history import History

    db = opts.state_dir / "history.db"
    if not db.exists():
        fail(f"no history in {opts.state_dir} (has `trueup run` used this state dir?)")
    try:
        store = History(db)
    except TrueupError as exc:  # an unusable history.db (not SQLite, unreadable) is named
        fail(str(exc))
    try:
        rows = (
            store.actions(opts.app, limit=opts.limit)
            if opts.app
            else store.passes(limit=opts.limit)
        )
    finally:
        store.close()
    if opts.output == "json":
        click.echo(json.dumps({"actions" if opts.app else "passes": rows}, indent=2))
        return
    for row in rows:
        click.echo(history_line(row, app=opts.app is not None))


def history_line(row: Mapping[str, object], *, app: bool) -> str:
    """One line of `trueup history`: a pass, or (for an app) one of its actions."""
    when = datetime.fromtimestamp(_number(row["started_at"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
    rev = str(row["revision"] or "-")[:12]
    duration = _number(row["duration_s"])
    if app:
        message = str(row["message"]).splitlines()[0] if row["message"] else ""
        return f"{when}  {rev:12}  {row['kind']:7} {row['result']:7} {duration:6.1f}s  {message}"
    return (
        f"{when}  {rev:12}  {row['result']:8} changes={row['changes']} failed={row['failed']} "
        f"{duration:.2f}s trigger={row['trigger']}"
    )


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"history: expected a number, got {value!r}")
    return float(value)

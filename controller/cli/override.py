"""`trueup suspend APP` and `trueup resume APP`: the runtime override of one app.

When a controller runs on the state dir (it holds the lock), the command asks its API
(``POST /api/v1/apps/APP/suspend|resume``, at the address it recorded in ``status.json``, else
``--listen`` or the config's) with the API token (``--api-token-file``, else the config's
``api_token_file``), so the change is in force at once and a resume applies the app
immediately. When none runs, it edits ``<state-dir>/overrides.json`` under the state dir's
lock (so no controller can start half-way through), and the override is in force from the
next `trueup run`. Exit 0 when done, 2 when refused or unreachable (the reason on stderr).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click

from controller.cli.exits import fail
from controller.cli.groups import Params, optional_path, optional_text, path, text
from controller.cli.options import COMMON, CONFIG, LISTEN, Option, options, reads
from controller.errors import TrueupError

APP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TOKEN_FILE = Option(
    "--api-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="TRUEUP_API_TOKEN_FILE",
    help="The running controller's API token (default: the config's api_token_file).",
)


@dataclass(frozen=True)
class OverrideOptions:
    app: str
    instance: str
    state_dir: Path
    listen: str | None
    config_file: Path | None
    api_token_file: Path | None

    @classmethod
    def read(cls, params: Params) -> OverrideOptions:
        return cls(
            app=text(params, "app"),
            instance=text(params, "instance"),
            state_dir=path(params, "state_dir"),
            listen=optional_text(params, "listen"),
            config_file=optional_path(params, "config_file"),
            api_token_file=optional_path(params, "api_token_file"),
        )


def _command(suspended: bool, doc: str) -> click.Command:
    @click.command("suspend" if suspended else "resume", help=doc)
    @options(COMMON)  # accepted like every command's; only --state-dir is used
    @LISTEN.with_help("Address of the running controller's API (default: the one it recorded).")
    @CONFIG.with_help("The controller's settings file (its listen address and API token).")
    @TOKEN_FILE
    @click.argument("app")
    @reads(OverrideOptions.read)
    def command(opts: OverrideOptions) -> None:
        set_override(opts, suspended)

    return command


suspend = _command(
    True,
    "Leave APP exactly as it runs (no create, replace, heal or prune) until `trueup resume "
    "APP`; kept in the state dir, so it survives restarts.",
)
resume = _command(False, "Undo `trueup suspend APP`: the controller applies APP at once.")


def set_override(opts: OverrideOptions, suspended: bool) -> None:
    from controller.daemon.lock import holder

    if not APP_NAME.match(opts.app):
        fail(f"{opts.app!r} is not an app name (a DNS label: a-z, 0-9, -)")
    word = "suspended" if suspended else "resumed"
    pid = holder(opts.state_dir)
    if pid is None:
        _edit_offline(opts, suspended)
        click.echo(
            f"{opts.app} {word} (no controller runs on {opts.state_dir}: recorded in its "
            "overrides.json, in force when trueup run starts)"
        )
        return
    url = _api_url(opts)
    if url is None:
        fail(f"a controller (pid {pid}) runs on {opts.state_dir} but serves no API (listen off)")
    _post(url, opts, suspended, pid)
    click.echo(f"{opts.app} {word}")


def _edit_offline(opts: OverrideOptions, suspended: bool) -> None:
    from controller.daemon.lock import StateLock
    from controller.daemon.overrides import Overrides

    lock = StateLock(opts.state_dir)
    try:
        lock.acquire()  # a controller that started meanwhile is named
        try:
            Overrides.load(opts.state_dir).set_suspended(opts.app, suspended)
        finally:
            lock.release()
    except TrueupError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {opts.state_dir / 'overrides.json'}: {exc.strerror or exc}")


def _api_url(opts: OverrideOptions) -> str | None:
    """The running controller's API: the address it recorded, else --listen / the config's."""
    from controller.cli.inspect import _configured, _listen_url

    try:
        recorded = json.loads((opts.state_dir / "status.json").read_text(encoding="utf-8"))
        if isinstance(recorded, dict) and recorded.get("api"):
            return str(recorded["api"])
    except (OSError, ValueError):
        pass
    listen = opts.listen
    if listen is None and opts.config_file is not None:
        listen = _configured(opts.config_file).listen
    return _listen_url(listen or "127.0.0.1:9090")


def _token(opts: OverrideOptions) -> bytes | None:
    from controller.cli.inspect import _configured
    from controller.http.server import read_secret

    token_file = opts.api_token_file
    if token_file is None and opts.config_file is not None:
        token_file = _configured(opts.config_file).api_token_file
    try:
        return read_secret(token_file, "API token")
    except TrueupError as exc:
        fail(str(exc))


def _post(url: str, opts: OverrideOptions, suspended: bool, pid: int) -> None:
    import urllib.error
    import urllib.request

    token = _token(opts)
    if token is None:
        fail(
            f"a controller (pid {pid}) runs on {opts.state_dir}: give its API token with "
            "--api-token-file (or --config)"
        )
    action = "suspend" if suspended else "resume"
    request = urllib.request.Request(
        f"{url}/api/v1/apps/{opts.app}/{action}",
        method="POST",
        headers={"Authorization": f"Bearer {token.decode('utf-8', 'replace')}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        fail(f"the controller refused ({exc.code}): {_error(exc.read())}")
    except OSError as exc:
        fail(f"cannot reach the controller's API at {url}: {exc}")


def _error(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:200]
    return str(doc.get("error", doc)) if isinstance(doc, dict) else str(doc)

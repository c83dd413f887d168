"""`trueup run`'s wiring: build every long-lived part from ``Settings`` and run the controller.

Called by the CLI after it took the state-dir lock. Starts the git watcher, the engine
connection (waiting with backoff while no engine answers), the router, the history, the
controller loop and the HTTP server, and closes them in reverse order on SIGTERM/SIGINT.
``serve`` reads as those steps: each part is made by a function of its own and its close is
pushed on one ``AsyncExitStack`` as soon as it exists, so whatever fails part-way (a claim
refused, a bad router setting, a port the server cannot use) closes what was opened before
it, and nothing else: the instance's claim is released only once it was taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from controller.daemon.history import History
from controller.daemon.loop import Controller
from controller.daemon.manual import SyncGate
from controller.daemon.overrides import Overrides
from controller.desired.secrets import load_digest_key
from controller.errors import ConfigError, TrueupError
from controller.http.metrics import Metrics
from controller.http.server import Server, parse_listen, read_secret
from controller.notify.notifier import Awaiting, Notifier, NotifyConfig
from controller.notify.setup import make_destinations, make_statuses
from controller.reconciler import Reconciler
from controller.routes import Router, connect_router
from controller.runtime.base import Engine, claim_name
from controller.settings import Settings
from controller.source import GitSource, RevisionWatcher
from controller.targets import open_target
from controller.targets.target import Target

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class HttpSecrets:
    """The tokens and the webhook secret of the HTTP surface, read before anything starts."""

    api_token: bytes | None
    read_token: bytes | None
    webhook_secret: bytes | None


async def serve(settings: Settings) -> None:
    """Wire source, runtime, router, history, controller and HTTP server; run until a
    SIGTERM/SIGINT; close everything (in reverse order, whatever failed). The apps keep
    running."""
    check_listen(settings)  # a bad address is a config error, before anything starts
    secrets = read_http_secrets(settings)
    digest_key = load_digest_key(settings.state_dir)
    overrides = Overrides.load(settings.state_dir)  # a broken file stops the start, named
    metrics = Metrics()
    stop = stop_on_signals()
    async with contextlib.AsyncExitStack() as stack:
        source = open_source(settings)
        stack.callback(source.close)
        target = await connect_with_retry(lambda: open_target(settings), stop)
        if target is None:  # stopped before any engine answered
            return
        runtime = target.engine
        stack.push_async_callback(runtime.close)
        await claim_instance(runtime, settings)
        stack.push_async_callback(release_instance, runtime)
        history = History(settings.state_dir / "history.db", keep=settings.history_keep)
        stack.callback(history.close)
        router = open_router(settings)
        stack.push_async_callback(router.close)
        controller = make_controller(settings, source, target, router, history, metrics, digest_key)
        controller.gate = SyncGate(settings.sync, overrides)
        metrics.attach(controller)
        attach_notifier(settings, controller, source, history, metrics)
        if settings.listen != "off":
            server = make_server(settings, controller, metrics, history, secrets)
            stack.push_async_callback(server.close)
            await server.start()
        log.info(
            "controller_started",
            repo=source.display,
            instance=settings.instance,
            runtime=runtime.kind,
            interval_s=settings.interval,
            sync=settings.sync,
            suspended=sorted(overrides.suspended),
        )
        await controller.run(stop)


def check_listen(settings: Settings) -> None:
    """Refuse a bad ``listen`` / ``hooks_listen``, and a hooks listener without the main one."""
    serving = settings.listen != "off"
    if serving:
        parse_listen(settings.listen)
    if settings.hooks_listen is not None:
        if not serving:
            raise ConfigError("hooks_listen needs the main listener: listen is off")
        parse_listen(settings.hooks_listen)


def read_http_secrets(settings: Settings) -> HttpSecrets:
    return HttpSecrets(
        api_token=read_secret(settings.api_token_file, "API token"),
        read_token=read_secret(settings.api_read_token_file, "API read token"),
        webhook_secret=read_secret(settings.webhook_secret_file, "webhook secret"),
    )


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def open_source(settings: Settings) -> GitSource:
    return GitSource(
        settings.repo,
        state_dir=settings.state_dir,
        branch=settings.branch,
        token_file=settings.token_file,
    )


def open_router(settings: Settings) -> Router:
    return connect_router(
        settings.router,
        instance=settings.instance,
        admin_url=settings.caddy_admin,
        listen=settings.proxy_listen,
        https=settings.proxy_https,
    )


def make_controller(
    settings: Settings,
    source: GitSource,
    target: Target,
    router: Router,
    history: History,
    metrics: Metrics,
    digest_key: bytes,
) -> Controller:
    reconciler = Reconciler(
        source,
        target,
        instance=settings.instance,
        path=settings.path,
        secrets_dir=settings.secrets_dir,
        sops_age_key_files=settings.sops_age_key_file,
        policy=settings.policy(),
        concurrency=settings.concurrency,
        router=router,
        digest_key=digest_key,
        image_keep=settings.image_keep,
        compose=settings.compose(),
    )
    watcher = RevisionWatcher(source, interval=settings.interval, on_fetch=metrics.fetch_finished)
    return Controller(
        reconciler,
        target.engine,
        watcher=watcher,
        history=history,
        interval=settings.interval,
        backoff_initial=settings.backoff_initial,
        backoff_max=settings.backoff_max,
        shutdown_grace=settings.shutdown_grace,
        prune=settings.prune,
        allow_empty=settings.allow_empty,
        status_file=settings.state_dir / "status.json",
    )


def attach_notifier(
    settings: Settings,
    controller: Controller,
    source: GitSource,
    history: History,
    metrics: Metrics,
) -> None:
    """Give the controller a notifier when destinations or commit statuses are configured;
    each destination's channel runs as a supervised helper."""
    section = settings.notifications
    destinations = make_destinations(section)
    statuses = make_statuses(settings)
    if not destinations and statuses is None:
        return
    config = NotifyConfig(
        settings.instance, section.repeat_after, section.unreachable_after, section.external_url
    )
    notifier = Notifier(
        config,
        destinations,
        statuses=statuses,
        history=history,
        subject_of=source.commit_subject,
        report=metrics.notification,
    )
    watcher = controller.watcher
    if watcher is not None:
        notifier.git_trouble = lambda: git_trouble(watcher)
    notifier.awaiting = lambda: awaiting_approval(controller.gate)
    controller.notifier = notifier
    for name, channel in notifier.channels.items():
        controller.helpers.start(f"notify-{name}", channel.run)


def awaiting_approval(gate: SyncGate) -> Awaiting | None:
    """Manual sync mode's pending revision, as the notifier tells it."""
    pending = gate.pending
    return None if pending is None else Awaiting(pending.revision, pending.subject, pending.plan)


def git_trouble(watcher: RevisionWatcher) -> tuple[float, str] | None:
    """How long the watcher's fetches have failed, and why; None while they work."""
    since = watcher.failing_since
    if since is None:
        return None
    return time.monotonic() - since, str(watcher.error or "git fetch failed")


def make_server(
    settings: Settings,
    controller: Controller,
    metrics: Metrics,
    history: History,
    secrets: HttpSecrets,
) -> Server:
    return Server(
        controller,
        metrics=metrics,
        listen=settings.listen,
        instance=settings.instance,
        api_token=secrets.api_token,
        webhook_secret=secrets.webhook_secret,
        history=history,
        fetch_budget_s=max(60.0, 3 * settings.interval),
        read_token=secrets.read_token,
        hooks_listen=settings.hooks_listen,
        webhook_max_body=settings.webhook_max_body,
    )


async def release_instance(runtime: Engine) -> None:
    """Give the instance's claim back; an engine that is gone keeps it (taken over later)."""
    with contextlib.suppress(TrueupError):
        await runtime.release_instance()


async def claim_instance(runtime: Engine, settings: Settings) -> None:
    """Make sure no other controller drives this instance on this engine (whatever its state
    dir). A claim left by a controller that died on this host (its pid is gone) is taken over;
    one held from another host is refused with the way to clear it."""
    me = {
        "pid": str(os.getpid()),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
        "state-dir": str(settings.state_dir.resolve()),
    }
    for _ in range(3):
        holder = await runtime.claim_instance(me)
        if holder is None:
            return
        pid = holder.get("pid", "")
        same_host = holder.get("host") == me["host"]
        if same_host and pid.isdigit() and not _alive(int(pid)):
            log.warning("instance_claim_taken_over", stale_pid=pid, host=me["host"])
            await runtime.release_instance()
            continue
        if not holder:  # released between our attempt and our look: try again
            continue
        raise ConfigError(
            f"instance {settings.instance!r} on this engine is already driven by a trueup "
            f"controller (pid {pid or '?'} on host {holder.get('host', '?')}, state dir "
            f"{holder.get('state-dir', '?')}, since {holder.get('since', '?')}); if that "
            f"controller is gone, remove the network {claim_name(settings.instance)}"
        )
    raise ConfigError(f"could not claim instance {settings.instance!r}; try again")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def connect_with_retry(make: Callable[[], Target], stop: asyncio.Event) -> Target | None:
    """Open the engine's target; while no engine answers, wait with backoff (or until
    stopped)."""
    delay = 1.0
    while not stop.is_set():
        try:
            return make()
        except TrueupError as exc:
            log.warning("runtime_unavailable", error=str(exc), retry_in_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 60.0)
    return None

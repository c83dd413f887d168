"""`trueup run`'s wiring: build every long-lived part from ``Settings`` and run the controller.

Called by the CLI after it took the state-dir lock. Starts the git watcher, the engine
connection (waiting with backoff while no engine answers), the router, the history, the
controller loop and the HTTP server, and closes them in reverse order on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import structlog

from controller.errors import TrueupError
from controller.history import History
from controller.loop import Controller
from controller.metrics import Metrics
from controller.reconciler import Reconciler
from controller.routes import connect_router
from controller.runtime import connect
from controller.runtime.base import Runtime
from controller.server import Server, parse_listen, read_secret
from controller.settings import Settings
from controller.source import GitSource, RevisionWatcher

log = structlog.get_logger(__name__)


async def serve(settings: Settings) -> None:
    """Wire source, runtime, router, history, controller and HTTP server; run until a
    SIGTERM/SIGINT; close everything. The apps keep running."""
    serving = settings.listen != "off"
    if serving:
        parse_listen(settings.listen)  # a bad address is a config error, before anything starts
    api_token = read_secret(settings.api_token_file, "API token")
    webhook_secret = read_secret(settings.webhook_secret_file, "webhook secret")
    metrics = Metrics()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    source = GitSource(
        settings.repo,
        state_dir=settings.state_dir,
        branch=settings.branch,
        token_file=settings.token_file,
    )
    runtime = await connect_with_retry(
        lambda: connect(
            settings.runtime,
            settings.runtime_url,
            instance=settings.instance,
            swarm=settings.swarm,
            registry=settings.swarm_registry,
        ),
        stop,
    )
    if runtime is None:
        source.close()
        return
    history = History(settings.state_dir / "history.db", keep=settings.history_keep)
    router = connect_router(
        settings.router,
        instance=settings.instance,
        admin_url=settings.caddy_admin,
        listen=settings.proxy_listen,
        https=settings.proxy_https,
    )
    server: Server | None = None
    try:
        controller = Controller(
            Reconciler(
                source,
                runtime,
                instance=settings.instance,
                path=settings.path,
                secrets_dir=settings.secrets_dir,
                policy=settings.policy(),
                concurrency=settings.concurrency,
                router=router,
            ),
            runtime,
            watcher=RevisionWatcher(
                source, interval=settings.interval, on_fetch=metrics.fetch_finished
            ),
            history=history,
            interval=settings.interval,
            backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max,
            shutdown_grace=settings.shutdown_grace,
            prune=settings.prune,
            allow_empty=settings.allow_empty,
            status_file=settings.state_dir / "status.json",
        )
        metrics.attach(controller)
        if serving:
            server = Server(
                controller,
                metrics=metrics,
                listen=settings.listen,
                instance=settings.instance,
                api_token=api_token,
                webhook_secret=webhook_secret,
                history=history,
                fetch_budget_s=max(60.0, 3 * settings.interval),
            )
            await server.start()
        log.info(
            "controller_started",
            repo=source.display,
            instance=settings.instance,
            runtime=runtime.kind,
            interval_s=settings.interval,
        )
        await controller.run(stop)
    finally:
        if server is not None:
            await server.close()
        await router.close()
        await runtime.close()
        source.close()
        history.close()


async def connect_with_retry(make: Callable[[], Runtime], stop: asyncio.Event) -> Runtime | None:
    """Open the runtime; while no engine answers, wait with backoff (or until stopped)."""
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

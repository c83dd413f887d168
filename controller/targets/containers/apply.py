"""Apply a plan to a container engine: what each change does to containers (`PlanRunner` runs
the changes: one ``Outcome`` per change, never raising, independent apps concurrently, an app
after the apps it depends on).

Within an app, replicas are replaced one by one:
``start-first`` starts the new container, waits until it is healthy, then retires the old one,
so a failed rollout leaves the old version serving; ``stop-first`` retires first. Every
intermediate state is one a later pass can read from labels and finish (see ``plan``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

import structlog

from controller.desired.resolve import (
    BuildPlan,
    DesiredApp,
    DesiredState,
    app_networks,
    container_spec,
)
from controller.errors import ContainerNotFound, HealthCheckFailed, TrueupError
from controller.planning import Change, Plan, ReplicaStep
from controller.runtime.base import Runtime, volume_name
from controller.targets.containers.readiness import Probe, tcp_listening
from controller.targets.runner import (
    ContextReader,
    Outcome,
    PlanRunner,
    RoutesHook,
    build_image,
    no_routes,
)

log = structlog.get_logger(__name__)

RUNNING_SETTLE_S = 0.5
POLL_S = 0.25

T = TypeVar("T")

PortProbe = Callable[[str, Sequence[int], float], Awaitable[Probe]]


class Applier(PlanRunner):
    """Runs one plan against one runtime."""

    def __init__(
        self,
        runtime: Runtime,
        desired: DesiredState,
        *,
        instance: str,
        read_context: ContextReader,
        concurrency: int = 4,
        health_slack_s: float = 5.0,
        settle_s: float = RUNNING_SETTLE_S,
        routes_changed: RoutesHook = no_routes,
        bind_paths: Sequence[str] = (),
        probe: PortProbe = tcp_listening,
    ) -> None:
        super().__init__(
            desired,
            instance=instance,
            read_context=read_context,
            concurrency=concurrency,
            bind_paths=bind_paths,
        )
        self.runtime = runtime
        self.health_slack_s = health_slack_s
        self.settle_s = settle_s
        self.routes_changed = routes_changed
        self.probe = probe
        self._builds: dict[str, tuple[str, float]] = {}
        self._images_present: set[str] = set()

    async def _prepare(self, plan: Plan) -> None:
        if any(c.steps for c in plan.changes):
            await self.runtime.ensure_network()

    async def _after(self, outcomes: list[Outcome]) -> None:
        """Remove app networks no app joins any more (none while a manifest failed to load:
        its app keeps running as it was, and the engine keeps networks in use anyway)."""
        if self.desired.load_failed:
            return
        try:
            await self.runtime.prune_networks(app_networks(self.desired, self.instance))
        except TrueupError as exc:  # the next pass with changes retries
            log.warning("network_prune_failed", error=str(exc))

    def _describe(self, change: Change, outcome: Outcome) -> Outcome:
        if (build := self._builds.get(change.app)) is not None:
            return replace(outcome, build=build[0], build_s=build[1])
        return outcome

    async def _execute(self, change: Change) -> bool:
        want = self.desired.apps.get(change.app)
        built = False
        if want is not None and any(s.start for s in change.steps):
            built = await self._ensure_image(want)
            # before anything is retired: a volume that is not this instance's stops the change
            for volume in want.manifest.spec.volumes:
                if volume.volume_name is not None:  # a compose project's <project>_<volume>
                    adopt = volume.volume_name in want.adopt_volumes  # allow_volumes
                    await self.runtime.ensure_volume(volume.volume_name, adopt=adopt)
                    continue
                await self.runtime.ensure_volume(
                    volume_name(self.instance, volume.name), legacy=volume.name
                )
        for container in change.remove:
            await self._retire(container, grace=None)
        if want is not None:
            for step in change.steps:
                await self._step(want, step)
        return built

    async def _ensure_image(self, want: DesiredApp) -> bool:
        """Make ``want.image`` present on the engine; True when it was built.

        Apps that share an image ask the engine (and pull) once per run: the first holds the
        image's lock while it checks or pulls, the others find it present."""
        async with self._image_lock(want.image):
            if want.image in self._images_present or await self.runtime.image_exists(want.image):
                self._images_present.add(want.image)
                if want.build is not None:
                    self._builds[want.name] = ("cached", 0.0)
                return False
            if want.build is None:
                await self.runtime.pull(want.image)  # ImageNotFound when no registry has it
            else:
                await self._build(want, want.build)
            self._images_present.add(want.image)
            return want.build is not None

    async def _build(self, want: DesiredApp, plan: BuildPlan) -> None:
        started = time.monotonic()
        self._builds[want.name] = ("failed", 0.0)  # until the build below returns
        try:
            await build_image(self.runtime, self.read_context, want.name, plan)
            self._builds[want.name] = ("built", 0.0)
        finally:
            self._builds[want.name] = (self._builds[want.name][0], time.monotonic() - started)

    async def _step(self, want: DesiredApp, step: ReplicaStep) -> None:
        if step.reload is not None:
            await self._reload(want, step.reload, step.index)
            return
        if step.await_id is not None:
            try:
                await self._await_ready(want, step.await_id)
            except HealthCheckFailed:
                await self._retire(step.await_id, grace=0)
                raise
            for old in step.retire:
                await self._retire(old, grace=want.manifest.spec.stop_grace_period)
            return
        if not step.start:
            return
        grace = want.manifest.spec.stop_grace_period
        if not step.start_first:
            for old in step.retire:
                await self._retire(old, grace=grace)
        spec = container_spec(
            want,
            replica=step.index,
            instance=self.instance,
            revision=self.desired.revision,
            bind_paths=self.bind_paths,
        )
        new_id = await self.runtime.create(spec)
        try:
            await self.runtime.start(new_id)
            await self._await_ready(want, new_id)
        except TrueupError:
            if step.start_first and step.retire:
                # keep the old version serving; drop the replacement that did not come up
                await self._retire(new_id, grace=0)
            raise
        if step.start_first:
            for old in step.retire:
                await self._retire(old, grace=grace)

    async def _reload(self, want: DesiredApp, container: str, index: int) -> None:
        """Update ``container``'s files in place and send the app's reload signal; the
        process must still run afterwards, and not by its restart policy bringing it back."""
        reload = want.manifest.spec.reload
        assert reload is not None  # the plan reloads only apps that ask for it
        spec = container_spec(want, replica=index, instance=self.instance, revision=None)
        restarts = (await self.runtime.inspect(container)).restart_count
        await self.runtime.reload_files(container, spec.files, signal=reload.signal, name=spec.name)
        await self._idle(self.settle_s)
        info = await self.runtime.inspect(container)
        if info.state != "running":
            raise HealthCheckFailed(
                f"{info.name} is {info.state} after the reload signal (exit code {info.exit_code})"
            )
        if info.restart_count > restarts:
            raise HealthCheckFailed(
                f"{info.name} exited on the reload signal and was restarted by its restart policy"
            )

    async def _await_ready(self, want: DesiredApp, container: str) -> None:
        """Wait for health or, without a check, for the process to prove it came up: it
        accepts a connection on one of its declared TCP ports, or it stays up for the settle
        window; either way still running, and never restarted by its restart policy."""
        check = want.manifest.spec.health_check
        if check is None:
            waited = await self._until_listening(want, container)
            info = await self.runtime.inspect(container)
            if info.state != "running":
                raise HealthCheckFailed(
                    f"{info.name} is {info.state} right after start (exit code {info.exit_code})"
                )
            if info.restart_count:  # it died, and its restart policy brought it back
                raise HealthCheckFailed(
                    f"{info.name} exited within {waited:.2g}s of its start and was "
                    f"restarted {info.restart_count} time(s)"
                )
            return
        budget = check.start_period + check.retries * (check.interval + check.timeout)
        deadline = time.monotonic() + budget + self.health_slack_s
        while True:
            info = await self.runtime.inspect(container)
            if info.state == "running" and info.health == "healthy":
                return
            if info.state in ("exited", "dead"):
                raise HealthCheckFailed(
                    f"{info.name} exited (code {info.exit_code}) before becoming healthy"
                )
            if info.health == "unhealthy":
                raise HealthCheckFailed(f"{info.name} failed its health check")
            if time.monotonic() > deadline:
                raise HealthCheckFailed(
                    f"{info.name} not healthy after {budget + self.health_slack_s:.0f}s"
                )
            await self._idle(POLL_S)

    async def _until_listening(self, want: DesiredApp, container: str) -> float:
        """The settle window, cut short when a declared TCP port of ``container`` accepts a
        connection on its address; the seconds waited. A process that dies at once never
        listens, so the old version keeps serving; one that does not listen (yet), or that
        the controller cannot reach, gets the whole window as before."""
        started = time.monotonic()
        ports = [p.container_port for p in want.manifest.spec.ports if p.protocol == "tcp"]
        if ports and self.settle_s > 0:
            info = await self.runtime.inspect(container)
            if info.state in ("exited", "dead"):
                return time.monotonic() - started  # gone already: the caller says so now
            host = info.ip_address  # the adapter's pick among the container's networks
            if info.running and host:
                probe = await self._unslotted(self.probe(host, ports, self.settle_s))
                if probe == "listening":
                    log.debug("container_listening", container=info.name, host=host)
                    return time.monotonic() - started
        left = self.settle_s - (time.monotonic() - started)
        if left > 0:
            await self._idle(left)
        return time.monotonic() - started

    async def _idle(self, seconds: float) -> None:
        """Sleep without holding a concurrency slot (see `_unslotted`)."""
        await self._unslotted(asyncio.sleep(seconds))

    async def _unslotted(self, wait: Awaitable[T]) -> T:
        """Await ``wait`` without holding a concurrency slot (the caller holds one): waiting
        for a container to settle, listen or get healthy costs the engine nothing, so other
        apps' creates and starts go ahead meanwhile. The slot is taken back, ahead of changes
        not yet started, before returning."""
        self._slots.give()
        try:
            return await wait
        finally:
            await self._slots.take(resume=True)

    async def _retire(self, container: str, *, grace: float | None) -> None:
        """Leave the routes, stop (with the grace period) and remove; gone already is fine."""
        await self.routes_changed(frozenset({container}))
        try:
            if grace != 0:
                await self.runtime.stop(container, grace_period=grace)
            await self.runtime.remove(container, force=True)
        except ContainerNotFound:
            return

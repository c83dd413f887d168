"""Apply a swarm plan: create, update, scale and remove services; one `Outcome` per change.

The Swarm target's `PlanRunner` (the container target's is `containers.apply.Applier`), with
the same contract: never raises mid-plan, independent apps run concurrently (bounded), an app
waits for the apps it depends on. Swarm rolls tasks itself (start-first or stop-first, one at a
time, rolling back on failure), so an update here is: ensure the image (build, and push when a
registry is configured) and the secrets, replace the service spec, then wait until Swarm's
UpdateStatus says ``completed`` (converged) or that it rolled back (a failed outcome: the old
version serves, the app shows Degraded), within a deadline derived from the health check.
While it waits, each change of an app's running tasks goes to the routes hook, so routes that
name tasks (``endpointMode: dnsrr``) gain a new task once it runs and lose an old one as soon
as Swarm wants it stopped, while it still drains (a virtual IP never changes: no push). Every
change then waits, like `kubectl rollout status`, until the desired number of tasks run, all of
the service's current spec (a task's template digest equals the service's), and no other task
runs any more: an old task still stopping after the update, a task beyond a lower replica count
(running means healthy: Swarm holds a task in ``starting`` until its check passes). After the
changes, secrets of this instance no service uses are removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from controller.desired.resolve import DesiredApp, DesiredState, app_networks
from controller.errors import (
    ContainerNotFound,
    HealthCheckFailed,
    RuntimeTimeout,
    TrueupError,
)
from controller.planning import Change, Plan
from controller.runtime.swarm_base import FAILED_ROLLOUT, ServiceInfo, ServiceSpec, TaskInfo
from controller.targets.runner import (
    ContextReader,
    Outcome,
    PlanRunner,
    RoutesHook,
    build_image,
    no_routes,
)
from controller.targets.swarm.plan import registry_image, service_name, service_spec

if TYPE_CHECKING:
    from controller.runtime.swarm import SwarmRuntime

log = structlog.get_logger(__name__)

POLL_S = 0.5
NETWORK_RELEASE_S = 20.0
"""How long a pass waits for removed tasks to let go of an app network it removes."""
_LIVE = ("starting", "running")
"""Task states whose container runs (``starting``: running, its health check not passed yet)."""
SLACK_S = 60.0
"""Added to every wait: scheduling, image pulls on other nodes, Swarm's own bookkeeping."""


class SwarmApplier(PlanRunner):
    """Runs one swarm plan against one `SwarmRuntime`."""

    def __init__(
        self,
        runtime: SwarmRuntime,
        desired: DesiredState,
        *,
        instance: str,
        read_context: ContextReader,
        concurrency: int = 4,
        slack_s: float = SLACK_S,
        poll_s: float = POLL_S,
        bind_paths: Sequence[str] = (),
        routes_changed: RoutesHook = no_routes,
    ) -> None:
        super().__init__(
            desired,
            instance=instance,
            read_context=read_context,
            concurrency=concurrency,
            bind_paths=bind_paths,
        )
        self.runtime = runtime
        self.slack_s = slack_s
        self.poll_s = poll_s
        self.routes_changed = routes_changed
        self._routed: dict[str, frozenset[str]] = {}

    async def _prepare(self, plan: Plan) -> None:
        if any(c.action != "delete" for c in plan.changes):
            await self.runtime.ensure_network()

    async def _after(self, outcomes: list[Outcome]) -> None:
        await self._remove_unused_secrets()
        await self._remove_unused_networks(any(o.action in ("delete", "update") for o in outcomes))

    async def _execute(self, change: Change) -> bool:
        for service_id in change.remove:
            await self.runtime.remove_service(service_id)
        want = self.desired.apps.get(change.app)
        if want is None or change.action == "delete":
            return False
        built = False
        image = want.image
        if want.build is not None:
            if change.action != "scale":
                built = await self._ensure_image(want)
            image = registry_image(self.runtime.registry, want.image)
        current: ServiceInfo | None = None
        if change.action != "create":
            try:
                current = await self.runtime.inspect_service(service_name(self.instance, want.name))
            except ContainerNotFound:  # removed since the plan was made: create it again
                current = None
        spec = service_spec(
            want,
            instance=self.instance,
            revision=self.desired.revision,
            image=image,
            mounted=current.volumes if current is not None else (),
            bind_paths=self.bind_paths,
        )
        secret_ids = {s.name: await self.runtime.ensure_secret(s) for s in spec.secrets}
        if current is None:
            service_id = await self.runtime.create_service(spec, secret_ids)
            await self._await_tasks(service_id, want, spec, seen=frozenset())
            return built
        seen = frozenset(t.id for t in await self.runtime.service_tasks(current.id))
        await self.runtime.update_service(current.id, current.version, spec, secret_ids)
        await self._await_rollout(current.id, want, spec, seen=seen)
        return built

    async def _ensure_image(self, want: DesiredApp) -> bool:
        """Build a missing image (once per tag per pass); push it when a registry is set."""
        assert want.build is not None
        plan = want.build
        async with self._image_lock(plan.tag):
            built = False
            if not await self.runtime.image_exists(plan.tag):
                await build_image(self.runtime, self.read_context, want.name, plan)
                built = True
            if self.runtime.registry:
                await self.runtime.push(plan.tag, registry_image(self.runtime.registry, plan.tag))
            return built

    def _task_budget(self, want: DesiredApp) -> float:
        """How long one task may take to become running (healthy)."""
        check = want.manifest.spec.health_check
        if check is None:
            return 5.0
        return check.start_period + (check.retries + 1) * (check.interval + check.timeout)

    async def _await_tasks(
        self, service_id: str, want: DesiredApp, spec: ServiceSpec, *, seen: frozenset[str]
    ) -> None:
        """Until exactly ``spec.replicas`` tasks run, all of the service's current spec, and no
        other task runs any more (an old task still stopping after an update, a task beyond a
        lower replica count): like `kubectl rollout status`. Fails early when new tasks keep
        failing (two failures, or one rejection: a missing image, an impossible mount)."""
        grace = spec.stop_grace_period if spec.stop_grace_period is not None else 10.0
        budget = self._task_budget(want) + spec.monitor + grace + self.slack_s
        deadline = time.monotonic() + budget
        while True:
            service = await self.runtime.inspect_service(service_id)
            tasks = await self.runtime.service_tasks(service_id)
            await self._follow_routes(want.name, tasks)
            wanted = [t for t in tasks if t.desired_state == "running"]
            live = [t for t in tasks if t.state in _LIVE]
            stale = [
                t
                for t in live
                if t.desired_state != "running" or t.template_digest != service.template_digest
            ]
            if (
                len(wanted) == spec.replicas
                and all(t.state == "running" for t in wanted)
                and not stale
            ):
                return
            failed = [t for t in tasks if t.id not in seen and t.state in ("failed", "rejected")]
            if any(t.state == "rejected" for t in failed) or len(failed) >= 2:
                raise HealthCheckFailed(
                    f"service {spec.name}: {len(failed)} task(s) failed; last: {_why(failed)}"
                )
            if time.monotonic() > deadline:
                running = sum(1 for t in wanted if t.state == "running")
                old = f"; {len(stale)} old task(s) still running" if stale else ""
                raise RuntimeTimeout(
                    f"service {spec.name}: {running}/{spec.replicas} task(s) running after "
                    f"{budget:.0f}s{old}"
                )
            await asyncio.sleep(self.poll_s)

    async def _await_rollout(
        self, service_id: str, want: DesiredApp, spec: ServiceSpec, *, seen: frozenset[str]
    ) -> None:
        """Until Swarm completes the update (then the tasks run) or reports a rollback."""
        per_task = self._task_budget(want) + spec.monitor
        budget = max(1, spec.replicas) * per_task * 2 + spec.monitor + self.slack_s
        deadline = time.monotonic() + budget
        rolling: bool | None = None
        while True:
            info = await self.runtime.inspect_service(service_id)
            if self.routes_changed is not no_routes:
                await self._follow_routes(want.name, await self.runtime.service_tasks(service_id))
            if rolling is None:
                # read right after the update, while PreviousSpec is set (a rollback clears it)
                rolling = info.template_changed
            state = info.update_state
            if not rolling or state == "completed":
                await self._await_tasks(service_id, want, spec, seen=seen)
                return
            if state in ("rollback_completed", "rollback_paused", "paused"):
                tasks = await self.runtime.service_tasks(service_id)
                failed = [
                    t for t in tasks if t.id not in seen and t.state in ("failed", "rejected")
                ]
                detail = f"; {_why(failed)}" if failed else ""
                raise HealthCheckFailed(
                    f"Swarm rolled back service {spec.name} ({state}): "
                    f"{info.update_message or 'update failed'}{detail}"
                    if state != "paused"
                    else f"Swarm paused the update of {spec.name}: {info.update_message}{detail}"
                )
            if time.monotonic() > deadline:
                raise RuntimeTimeout(
                    f"service {spec.name}: update still {state or 'pending'} after {budget:.0f}s"
                )
            if state in FAILED_ROLLOUT:
                log.info("swarm_rolling_back", app=want.name, message=info.update_message)
            await asyncio.sleep(self.poll_s)

    async def _follow_routes(self, app: str, tasks: Sequence[TaskInfo]) -> None:
        """Tell the routes hook when the app's running tasks changed since it last heard."""
        running = frozenset(
            t.id for t in tasks if t.state == "running" and t.desired_state == "running"
        )
        if self._routed.get(app) == running:
            return
        self._routed[app] = running
        leaving = frozenset(t.id for t in tasks if t.desired_state != "running")
        await self.routes_changed(leaving)

    async def _remove_unused_secrets(self) -> None:
        """Secrets of this instance that no service references any more (rotated, pruned)."""
        try:
            snapshot = await self.runtime.snapshot()
            in_use = {name for s in snapshot.services for name in s.secrets}
            await self.runtime.remove_unused_secrets(in_use)
        except TrueupError as exc:  # cleanup only: the next pass tries again
            log.warning("secret_cleanup_failed", error=str(exc))

    async def _remove_unused_networks(self, patient: bool) -> None:
        """App networks no service of the desired state joins (none while a manifest failed
        to load); Swarm refuses to remove one a service or task still uses. ``patient`` (a
        service was removed or updated): wait up to `NETWORK_RELEASE_S` for its old tasks to
        let go of it."""
        if self.desired.load_failed:
            return
        keep = app_networks(self.desired, self.instance)
        deadline = time.monotonic() + NETWORK_RELEASE_S
        try:
            # a removed service's tasks hold its networks until they are gone (seconds)
            while await self.runtime.unused_networks(keep):
                await self.runtime.prune_networks(keep)
                if not patient or time.monotonic() > deadline:
                    return  # still used by a service or a task: the next pass with changes
                await asyncio.sleep(self.poll_s)
        except TrueupError as exc:  # cleanup only: the next pass with changes tries again
            log.warning("network_prune_failed", error=str(exc))


def _why(tasks: list[TaskInfo]) -> str:
    newest = max(tasks, key=lambda t: t.timestamp)
    return f"{newest.state}: {newest.error or newest.message}"

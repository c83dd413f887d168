"""One reconcile pass: fetch → load → desire → observe → plan → apply.

Reads top to bottom; each stage is a function of its own module. The reconciler owns the
caches that make a no-op pass cheap: manifests are parsed once per git tree id of ``--path``
(in memory, and with ``cache_dir`` across processes: see ``desired_cache``), build contexts are
identified by their git tree id without packing them, and the engine is observed with one list
call. Used by `trueup diff` / `trueup apply` (one pass) and by the controller loop (many).

The manifest loader (pydantic) and the Swarm stages are imported where they are first needed,
so a one-shot pass whose manifests are cached, on a plain engine, never loads them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller.desired import cache as desired_cache
from controller.desired.policy import Policy
from controller.desired.resolve import DesiredState, resolve
from controller.desired.secrets import SecretStore, load_secrets
from controller.errors import TrueupError
from controller.manifests.problems import Problem
from controller.planning import Plan, make_plan
from controller.routes import NoRouter, Router, RouteSync, RouteTable, kept_apps
from controller.runtime.base import ContainerInfo, Runtime
from controller.source import GitSource, ManifestFiles
from controller.source.worktree import context_id as worktree_context_id
from controller.targets.containers.apply import Applier, Outcome
from controller.targets.observed import ObservedState, observe

if TYPE_CHECKING:
    from controller.manifests.loader import LoadResult
    from controller.runtime.swarm import SwarmRuntime
    from controller.runtime.swarm_base import ServiceInfo
    from controller.targets.swarm.apply import SwarmApplier

log = structlog.get_logger(__name__)

PlanFilter = Callable[[Plan, DesiredState], Plan]


@dataclass
class PassResult:
    """Everything one pass found and did."""

    revision: str | None
    plan: Plan
    problems: list[Problem]
    outcomes: list[Outcome] = field(default_factory=list)
    desired: DesiredState | None = None
    observed: ObservedState | None = None
    duration_s: float = 0.0
    routes: RouteTable | None = None
    """The route table of the pass (after apply: what was pushed, or would have been)."""
    routes_error: str | None = None
    """Why the routes stage failed (the proxy serves stale routes); None when it did not."""
    routes_pushed: bool = False
    """True when the pass changed the proxy's config."""
    after: list[ContainerInfo] | None = None
    """The engine's containers after apply changed something (None: nothing applied, or the
    engine did not answer); ``observed`` is still current otherwise."""

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


class Reconciler:
    """Strings the stages together for one source, one runtime and one instance."""

    def __init__(
        self,
        source: GitSource,
        runtime: Runtime,
        *,
        instance: str,
        path: str = ".",
        secrets_dir: Path | None = None,
        policy: Policy | None = None,
        concurrency: int = 4,
        router: Router | None = None,
        cache_dir: Path | None = None,
        digest_key: bytes | None = None,
    ) -> None:
        self.source = source
        self.runtime = runtime
        self.instance = instance
        self.path = path
        self.secrets_dir = secrets_dir
        self.policy = policy or Policy()
        self.concurrency = concurrency
        self.router: Router = router or NoRouter()
        self.cache_dir = cache_dir
        self.digest_key = digest_key
        """The instance's secret digest key (``secrets.load_digest_key``); None: per process."""
        self._parsed: dict[str, LoadResult] = {}
        self._resolved: tuple[str, DesiredState] | None = None

    async def manifest_files(self, *, rev: str | None, worktree: bool = False) -> ManifestFiles:
        """The manifest files under ``--path`` at ``rev`` (or on disk with ``worktree``)."""
        if worktree:
            return await asyncio.to_thread(self.source.read_worktree, self.path)
        revision = await asyncio.to_thread(self.source.resolve, rev)
        return await asyncio.to_thread(self.source.manifest_files, revision.sha, self.path)

    def load(self, files: ManifestFiles) -> LoadResult:
        """What ``files`` load to (parsed once per tree id)."""
        from controller.manifests.loader import load_files

        cached = self._parsed.get(files.tree_id or "")
        if cached is None:
            cached = load_files(files.files)
            if files.tree_id:
                self._parsed = {files.tree_id: cached}
        return cached

    async def desire(self, files: ManifestFiles) -> tuple[DesiredState, list[Problem]]:
        """Every app resolved (images, secrets, policy), and the problems found on the way.

        A clean state is remembered by ``--path``'s tree id (in memory, and in ``cache_dir``
        when given) and reused while its build contexts and secrets are unchanged (see
        ``desired_cache``)."""
        secrets = await asyncio.to_thread(
            load_secrets, self.secrets_dir, digest_key=self.digest_key
        )
        key = (
            desired_cache.cache_key(self.path, files.tree_id, self.policy)
            if files.tree_id
            else None
        )
        if key is not None:
            reused = await asyncio.to_thread(self._reuse, key, files, secrets)
            if reused is not None:
                self._resolved = (key, reused)
                return reused, []
        loaded = await asyncio.to_thread(self.load, files)  # parsing never stalls the loop
        desired = await self.resolve(files, loaded, secrets)
        problems = sorted(list(loaded.problems) + resolution_problems(desired, loaded))
        if key is not None and not problems:
            self._resolved = (key, desired)
            if self.cache_dir is not None:
                await asyncio.to_thread(desired_cache.store, self.cache_dir, key, desired)
        return desired, problems

    def _reuse(self, key: str, files: ManifestFiles, secrets: SecretStore) -> DesiredState | None:
        """The last clean state for ``key``, from memory or the cache dir, if still current."""

        def context_id(context: str) -> str:
            return self._context_id(files, context)

        if self._resolved is not None and self._resolved[0] == key:
            return desired_cache.reuse(
                self._resolved[1], revision=files.revision, secrets=secrets, context_id=context_id
            )
        if self.cache_dir is None:
            return None
        return desired_cache.restore(
            self.cache_dir, key, revision=files.revision, secrets=secrets, context_id=context_id
        )

    async def resolve(
        self, files: ManifestFiles, loaded: LoadResult, secrets: SecretStore
    ) -> DesiredState:
        """Resolve images (build contexts' tree ids), secrets and policy for every app."""
        contexts = {
            item.app.spec.build.context
            for item in loaded.apps.values()
            if item.app.spec.build is not None
        }
        context_ids: dict[str, str] = {}
        failed: dict[str, str] = {}
        for context in sorted(contexts):
            try:
                context_ids[context] = await asyncio.to_thread(self._context_id, files, context)
            except Exception as exc:  # a missing context fails that app only (see resolve)
                log.warning("build_context_unavailable", context=context, error=str(exc))
                if isinstance(exc, TrueupError):
                    failed[context] = str(exc)
        desired = await asyncio.to_thread(
            resolve,
            loaded,
            revision=files.revision,
            secrets=secrets,
            context_ids=context_ids,
            policy=self.policy,
        )
        for name, item in loaded.apps.items():  # say why a context is unusable, not "not found"
            build = item.app.spec.build
            if build is not None and build.context in failed and name in desired.errors:
                desired.errors[name] = failed[build.context]
        return desired

    def _context_id(self, files: ManifestFiles, context: str) -> str:
        if files.revision is None:
            root = self.source.worktree_root
            assert root is not None
            return worktree_context_id(root, context)
        return self.source.context_id(files.revision, context)

    async def read_context(self, revision: str, context: str, dockerfile: str) -> bytes:
        result = await asyncio.to_thread(
            self.source.build_context, revision, context, dockerfile=dockerfile
        )
        return result.tar

    async def run_pass(
        self,
        *,
        rev: str | None = None,
        worktree: bool = False,
        apply: bool = True,
        prune: bool = True,
        allow_empty: bool = False,
        plan_filter: PlanFilter | None = None,
    ) -> PassResult:
        """One whole pass; with ``apply=False`` it only plans (nothing on the host changes).

        ``plan_filter`` lets the controller loop narrow the plan (one app after an event,
        apps backing off left out) after it is made, so observation stays one list call.
        """
        started = time.monotonic()
        files = await self.manifest_files(rev=rev, worktree=worktree)
        desired, problems = await self.desire(files)
        observed, services = await self._observe()
        current_routes, routes_error = await self.current_routes()
        if services is not None:  # a swarm: services are the unit (see swarm_plan)
            from controller.targets.swarm.plan import make_swarm_plan

            plan = make_swarm_plan(
                desired,
                services,
                observed,
                instance=self.instance,
                prune=prune,
                allow_empty=allow_empty,
                current_routes=current_routes,
            )
        else:
            plan = make_plan(
                desired,
                observed,
                prune=prune,
                allow_empty=allow_empty,
                current_routes=current_routes,
            )
        if plan_filter is not None:
            plan = plan_filter(plan, desired)
        plan = await self._drop_cached_builds(plan)
        result = PassResult(
            files.revision,
            plan,
            problems,
            desired=desired,
            observed=observed,
            routes=plan.routes,
            routes_error=routes_error,
        )
        sync = RouteSync(
            self.router,
            self.runtime,
            desired,
            keep=kept_apps(desired, (s.app for s in plan.skipped)),
            current=current_routes or (),
        )
        container_changes = tuple(c for c in plan.changes if c.action != "route")
        if apply and container_changes:
            revision = files.revision
            assert revision is not None, "apply never runs on the working tree"

            async def read(context: str, dockerfile: str) -> bytes:
                return await self.read_context(revision, context, dockerfile)

            swarm = _swarm(self.runtime)
            applier: Applier | SwarmApplier
            if swarm is not None:
                from controller.targets.swarm.apply import SwarmApplier

                applier = SwarmApplier(
                    swarm,
                    desired,
                    instance=self.instance,
                    read_context=read,
                    concurrency=self.concurrency,
                    bind_paths=self.policy.allowed_bind_paths,
                )
            else:
                applier = Applier(
                    self.runtime,
                    desired,
                    instance=self.instance,
                    read_context=read,
                    concurrency=self.concurrency,
                    routes_changed=sync.retiring,
                    bind_paths=self.policy.allowed_bind_paths,
                )
            result.outcomes = await applier.run(replace(plan, changes=container_changes))
        if apply:
            fresh: ObservedState | None = observed
            if result.outcomes:  # the host changed: observe it once, for routes and status
                try:
                    result.after = await self.runtime.list()
                    fresh = observe(result.after)
                except TrueupError:
                    fresh = None  # the routes stage tries again and records the failure
            await self._routes_stage(sync, result, fresh=fresh)
        result.duration_s = time.monotonic() - started
        log.info(
            "reconcile_pass",
            revision=files.revision,
            changes=len(plan.changes),
            failed=len(result.failed),
            problems=len(problems),
            routes_error=result.routes_error,
            duration_s=round(result.duration_s, 3),
        )
        return result

    async def _observe(self) -> tuple[ObservedState, tuple[ServiceInfo, ...] | None]:
        """Containers (one list call); on a swarm, its services and the task rows (two)."""
        swarm = _swarm(self.runtime)
        if swarm is None:
            return observe(await self.runtime.list()), None
        from controller.runtime.swarm_base import task_rows

        snapshot = await swarm.snapshot()
        return observe(task_rows(snapshot)), snapshot.services

    async def _drop_cached_builds(self, plan: Plan) -> Plan:
        """A change names a build only when its image is not on the engine yet, so the plan
        (and `trueup diff`) says exactly whether a build will happen."""
        changes = []
        for change in plan.changes:
            if change.build is not None and await self.runtime.image_exists(change.build.tag):
                change = replace(change, build=None)
            changes.append(change)
        return replace(plan, changes=tuple(changes))

    async def current_routes(self) -> tuple[RouteTable | None, str | None]:
        """The table the router serves now (None: nothing to compare with) and a read error."""
        try:
            return await self.router.current(), None
        except TrueupError as exc:
            log.warning("routes_read_failed", router=self.router.kind, error=str(exc))
            return None, str(exc)

    async def _routes_stage(
        self, sync: RouteSync, result: PassResult, *, fresh: ObservedState | None
    ) -> None:
        """Push the full table (re-asserted every pass); a failure fails this stage only."""
        if self.router.kind == "none" and not result.outcomes:
            return  # nothing applied, nothing to push: the plan's table is current
        result.routes = await sync.finish(fresh)
        result.routes_error = sync.error
        result.routes_pushed = sync.pushes > 0
        if sync.error is None:
            result.outcomes.extend(
                Outcome(c.app, c.action, True, "routes pushed", 0.0)
                for c in result.plan.changes
                if c.action == "route"
            )
        log.info(
            "routes_stage",
            router=self.router.kind,
            routes=len(result.routes or ()),
            pushed=result.routes_pushed,
            error=sync.error,
        )


def _swarm(runtime: Runtime) -> SwarmRuntime | None:
    """The runtime when it drives Swarm services (plan and apply take the swarm path)."""
    if runtime.kind != "swarm":
        return None
    from controller.runtime.swarm import SwarmRuntime

    return runtime if isinstance(runtime, SwarmRuntime) else None


def resolution_problems(desired: DesiredState, loaded: LoadResult) -> list[Problem]:
    """Apps that loaded but could not be resolved (secret, policy), as located problems."""
    out: list[Problem] = []
    for app, message in sorted(desired.errors.items()):
        item = loaded.apps.get(app)
        file, line = (item.file, item.line) if item else ("(unknown)", 1)
        out.append(Problem(file, line, 1, f"app {app}: {message}"))
    return out

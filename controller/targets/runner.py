"""Running a plan, whatever the engine: `PlanRunner` and the `Outcome` of each change.

One task per change, at most ``concurrency`` of them doing engine work at once (`Slots`), each
app waiting until the apps it depends on converged; a failure becomes that change's `Outcome`
and never stops the others. A target's runner (`targets/containers/apply.py`,
`targets/swarm/apply.py`) says only what one change does on its engine. Also here:
`build_image`, the build both targets run for an app built from git.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from controller import labels as L
from controller.desired.resolve import BuildPlan, DesiredState
from controller.errors import BuildFailed, TransientError, TrueupError
from controller.planning import Change, Plan
from controller.runtime.base import BuildRequest, Engine
from controller.targets.slots import Slots

log = structlog.get_logger(__name__)

ContextReader = Callable[[str, str], Awaitable[bytes]]
"""(context path, dockerfile) -> tar of the build context at the pass's revision."""

RoutesHook = Callable[[frozenset[str]], Awaitable[None]]
"""Called when the set of serving replicas changes: after a new replica became healthy and
before old ones are stopped. The argument names containers about to be retired, which must
leave the proxy's table now. The default does nothing (no router)."""


async def no_routes(retiring: frozenset[str]) -> None:
    """The `RoutesHook` without a router: nothing to take out of a proxy."""
    return None


@dataclass(frozen=True)
class RunSetup:
    """What a pass gives the runner of its plan: the build contexts at its revision, the
    routes hook (containers about to leave the proxy), the concurrency bound and the allowed
    bind paths (the policy's)."""

    read_context: ContextReader
    routes_changed: RoutesHook = no_routes
    concurrency: int = 4
    bind_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What happened to one change."""

    app: str
    action: str
    ok: bool
    message: str
    duration_s: float
    transient: bool = False
    built: bool = False
    build: str | None = None
    """For an app built from git that needed its image: ``built``, ``cached`` (the
    content-addressed tag was already on the engine) or ``failed``; else None."""
    build_s: float = 0.0
    """Seconds spent building (0 unless ``build`` is ``built`` or ``failed``)."""


async def build_image(
    runtime: Engine, read_context: ContextReader, app: str, plan: BuildPlan
) -> None:
    """Build ``plan.tag`` from the app's build context at the pass's revision."""
    tar = await read_context(plan.context, plan.dockerfile)
    log.info("build_started", app=app, tag=plan.tag, context=plan.context)
    await runtime.build(
        BuildRequest(
            context=tar,
            tag=plan.tag,
            dockerfile=plan.dockerfile,
            args=dict(plan.args),
            target=plan.target,
            labels={
                L.IMAGE_INSTANCE: runtime.instance,  # retention removes only these (images.py)
                L.APP: app,
                "trueup.context-tree": plan.context_id,
            },
        ),
        on_log=lambda line: log.debug("build_output", app=app, line=line),
    )
    log.info("build_finished", app=app, tag=plan.tag)


class PlanRunner:
    """How a plan is run, whatever the engine: one task per change, at most ``concurrency``
    doing engine work at once, each app waiting for the apps it depends on; a failure becomes
    that change's ``Outcome`` and never stops the others. Subclasses say what a change does."""

    def __init__(
        self,
        desired: DesiredState,
        *,
        instance: str,
        read_context: ContextReader,
        concurrency: int = 4,
        bind_paths: Sequence[str] = (),
    ) -> None:
        self.desired = desired
        self.instance = instance
        self.read_context = read_context
        self.bind_paths = tuple(bind_paths)
        self._slots = Slots(concurrency)
        self._done: dict[str, asyncio.Future[bool]] = {}
        self._image_locks: dict[str, asyncio.Lock] = {}

    def _image_lock(self, image: str) -> asyncio.Lock:
        """One lock per image name: apps sharing an image check, pull or build it once."""
        return self._image_locks.setdefault(image, asyncio.Lock())

    async def run(self, plan: Plan) -> list[Outcome]:
        """Apply every change of ``plan``; return one outcome per change, in plan order."""
        if not plan.changes:
            return []
        loop = asyncio.get_running_loop()
        self._done = {c.app: loop.create_future() for c in plan.changes}
        try:
            await self._prepare(plan)
        except TrueupError as exc:
            return [self._fail(c, exc, 0.0) for c in plan.changes]
        tasks = [asyncio.create_task(self._run_change(c)) for c in plan.changes]
        outcomes = list(await asyncio.gather(*tasks))
        await self._after(outcomes)
        return outcomes

    async def _prepare(self, plan: Plan) -> None:
        """Engine setup every change needs (a failure fails them all)."""

    async def _after(self, outcomes: list[Outcome]) -> None:
        """Clean-up once every change has run."""

    async def _execute(self, change: Change) -> bool:
        """Do ``change``; return whether an image was built. Raise trueup errors only."""
        raise NotImplementedError

    def _describe(self, change: Change, outcome: Outcome) -> Outcome:
        """Add what only the subclass knows to an outcome."""
        return outcome

    async def _run_change(self, change: Change) -> Outcome:
        started = time.monotonic()
        bound = log.bind(app=change.app, action=change.action)
        for dep in change.depends_on:
            future = self._done.get(dep)
            if future is not None and not await asyncio.shield(future):
                outcome = Outcome(
                    change.app,
                    change.action,
                    False,
                    f"waiting: dependency {dep} did not converge",
                    time.monotonic() - started,
                    transient=True,
                )
                self._finish(change, outcome)
                return outcome
        await self._slots.take()
        try:
            try:
                built = await self._execute(change)
            except TrueupError as exc:
                outcome = self._fail(change, exc, time.monotonic() - started)
                bound.warning("change_failed", error=str(exc), transient=outcome.transient)
            else:
                outcome = Outcome(
                    change.app,
                    change.action,
                    True,
                    "converged",
                    time.monotonic() - started,
                    built=built,
                )
                bound.info("change_applied", duration_s=round(outcome.duration_s, 3))
        finally:
            self._slots.give()
        outcome = self._describe(change, outcome)
        self._finish(change, outcome)
        return outcome

    def _finish(self, change: Change, outcome: Outcome) -> None:
        future = self._done.get(change.app)
        if future is not None and not future.done():
            future.set_result(outcome.ok)

    def _fail(self, change: Change, exc: TrueupError, duration: float) -> Outcome:
        message = str(exc)
        if isinstance(exc, BuildFailed) and exc.log_tail:
            message += "\n" + "\n".join(exc.log_tail[-20:])
        return Outcome(
            change.app,
            change.action,
            False,
            message,
            duration,
            transient=isinstance(exc, TransientError),
        )

"""One reconcile pass: fetch → load → desire → observe → plan → apply → routes.

`Reconciler.run_pass` reads top to bottom, one method per stage: `manifest_files` (fetch),
`desire` (load and resolve), the target's `observe` and the observation's `plan`, `_apply` (the
target's `runner`), `_routes_stage`. The engine is the `Target`'s business: the reconciler
never asks which kind it drives. It owns the caches that make a no-op pass cheap: manifests
are parsed once per git tree id of ``--path`` (in memory, and with ``cache_dir`` across
processes: see ``desired_cache``), build contexts are identified by their git tree id without
packing them, and the engine is observed once (one list call on a container engine). Used by
`trueup diff` / `trueup apply` (one pass) and by the controller loop (many).

The manifest loader (pydantic) is imported where it is first needed, so a one-shot pass whose
manifests are cached never loads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from controller.desired import cache as desired_cache
from controller.desired.envfiles import EnvFile, parse_env_file
from controller.desired.files import file_contents
from controller.desired.policy import Policy
from controller.desired.resolve import DesiredState, resolve
from controller.desired.secrets import SecretStore, load_secrets
from controller.errors import SourceError, TrueupError
from controller.manifests.problems import Problem
from controller.planning import Plan, PlanOptions
from controller.routes import NoRouter, Router, RouteSync, RouteTable, kept_apps
from controller.sops import MAX_SOPS_FILE_BYTES, looks_encrypted
from controller.sops.repo import RepoSops, single_file
from controller.source import GitSource, ManifestFiles
from controller.source.files import SourceDigest, digest_disk, read_disk
from controller.source.hostvars import ComposeHost
from controller.source.worktree import context_id as worktree_context_id
from controller.targets.images import DEFAULT_KEEP, ImagePrune, prune_images
from controller.targets.observed import Observation, ObservedState
from controller.targets.refusals import refusal_problems, withhold
from controller.targets.runner import Outcome, RunSetup
from controller.targets.target import Target

if TYPE_CHECKING:
    from controller.manifests.discovery import ComposeInputs
    from controller.manifests.loader import LoadResult

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
    observed: Observation | None = None
    """What the target saw before planning."""
    duration_s: float = 0.0
    routes: RouteTable | None = None
    """The route table of the pass (after apply: what was pushed, or would have been)."""
    routes_error: str | None = None
    """Why the routes stage failed (the proxy serves stale routes); None when it did not."""
    routes_pushed: bool = False
    """True when the pass changed the proxy's config."""
    after: Observation | None = None
    """A look at the engine after apply changed something (None: nothing applied, or the
    engine did not answer); ``observed`` is still current otherwise."""
    images: ImagePrune | None = None
    """What image retention removed (None: the pass built and replaced nothing, or skipped
    it because a manifest had problems or pruning was off)."""

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


class Reconciler:
    """Strings the stages together for one source, one target and one instance."""

    def __init__(
        self,
        source: GitSource,
        target: Target,
        *,
        instance: str,
        path: str = ".",
        secrets_dir: Path | None = None,
        sops_age_key_files: Sequence[Path] = (),
        policy: Policy | None = None,
        concurrency: int = 4,
        router: Router | None = None,
        cache_dir: Path | None = None,
        digest_key: bytes | None = None,
        image_keep: int = DEFAULT_KEEP,
        compose: ComposeHost | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.instance = instance
        self.path = path
        self.secrets_dir = secrets_dir
        self.sops_age_key_files = tuple(sops_age_key_files)
        """The host's age identity files (`controller.sops`), read again on every pass."""
        self.policy = policy or Policy()
        self.concurrency = concurrency
        self.router: Router = router or NoRouter()
        self.cache_dir = cache_dir
        self.digest_key = digest_key
        """The instance's secret digest key (``secrets.load_digest_key``); None: per process."""
        self.image_keep = image_keep
        """Images kept per app beyond those in use (`targets.images`)."""
        self.compose = compose or ComposeHost()
        """What the host gives compose projects (variables files, profiles), read every pass."""
        self._parsed: dict[str, LoadResult] = {}
        self._resolved: tuple[str, DesiredState] | None = None

    async def manifest_files(self, *, rev: str | None, worktree: bool = False) -> ManifestFiles:
        """The manifest files under ``--path`` at ``rev`` (or on disk with ``worktree``)."""
        if worktree:
            return await asyncio.to_thread(self.source.read_worktree, self.path)
        revision = await asyncio.to_thread(self.source.resolve, rev)
        return await asyncio.to_thread(self.source.manifest_files, revision.sha, self.path)

    def load(self, files: ManifestFiles, compose: ComposeInputs | None = None) -> LoadResult:
        """What ``files`` load to, with the host's compose inputs (parsed once per tree id
        and inputs)."""
        from controller.manifests.loader import load_files

        inputs = compose if compose is not None else self.compose.inputs()
        key = f"{files.tree_id}:{inputs.digest(self.digest_key or b'')}" if files.tree_id else ""
        cached = self._parsed.get(key) if key else None
        if cached is None:
            cached = load_files(files.files, inputs)
            for warning in cached.warnings:
                log.warning("manifest_warning", file=warning.file, line=warning.line)
            if key and not _sops_failed(inputs):  # a key added on the host helps next pass
                self._parsed = {key: cached}
        return cached

    async def desire(self, files: ManifestFiles) -> tuple[DesiredState, list[Problem]]:
        """Every app resolved (images, secrets, policy), and the problems found on the way.

        A clean state is remembered by ``--path``'s tree id (in memory, and in ``cache_dir``
        when given) and reused while its build contexts and secrets are unchanged (see
        ``desired_cache``)."""
        secrets = await asyncio.to_thread(self._secrets, files)
        compose = replace(await asyncio.to_thread(self.compose.inputs), sops=secrets.sops)
        key = (
            desired_cache.cache_key(
                self.path, files.tree_id, self.policy, compose.digest(self.digest_key or b"")
            )
            if files.tree_id
            else None
        )
        if key is not None:
            reused = await asyncio.to_thread(self._reuse, key, files, secrets)
            if reused is not None:
                self._resolved = (key, reused)
                return reused, []
        loaded = await asyncio.to_thread(self.load, files, compose)  # never stalls the loop
        desired = await self.resolve(files, loaded, secrets)
        problems = sorted(list(loaded.problems) + resolution_problems(desired, loaded))
        if key is not None and not problems:
            self._resolved = (key, desired)
            if self.cache_dir is not None:
                await asyncio.to_thread(desired_cache.store, self.cache_dir, key, desired)
        return desired, problems

    def _secrets(self, files: ManifestFiles) -> SecretStore:
        """The pass's secrets: the host's secrets dir, and the repository's SOPS files at the
        pass's revision (decrypted on first use, with the identities read now)."""
        secrets = load_secrets(self.secrets_dir, digest_key=self.digest_key)

        def read(path: str) -> bytes:
            return self._repo_file(files, path)

        return replace(secrets, sops=RepoSops(read, self.sops_age_key_files))

    def _repo_file(self, files: ManifestFiles, path: str) -> bytes:
        """One file of the repository (not a folder, at most 16 MiB) at the pass's revision."""
        found = self._file_digest(files, path)
        if found.folder:
            raise SourceError(f"{path!r} is a folder, not a file")
        if found.size > MAX_SOPS_FILE_BYTES:
            raise SourceError(f"{path!r} is larger than 16 MiB")
        if files.revision is None:
            root = self.source.worktree_root
            assert root is not None
            return single_file(read_disk(root, path), path)
        return single_file(self.source.read_files(files.revision, path), path)

    def _reuse(self, key: str, files: ManifestFiles, secrets: SecretStore) -> DesiredState | None:
        """The last clean state for ``key``, from memory or the cache dir, if still current."""

        def context_id(context: str) -> str:
            return self._context_id(files, context)

        def file_digest(source: str) -> str:
            return self._file_digest(files, source).digest

        def env_file(path: str) -> EnvFile:
            return self._env_file(files, path, secrets)

        if self._resolved is not None and self._resolved[0] == key:
            return desired_cache.reuse(
                self._resolved[1],
                revision=files.revision,
                secrets=secrets,
                context_id=context_id,
                file_digest=file_digest,
                env_file=env_file,
            )
        if self.cache_dir is None:
            return None
        return desired_cache.restore(
            self.cache_dir,
            key,
            revision=files.revision,
            secrets=secrets,
            context_id=context_id,
            file_digest=file_digest,
            env_file=env_file,
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
            file_sources=await asyncio.to_thread(self._file_sources, files, loaded),
            env_files=await asyncio.to_thread(self._env_files, files, loaded, secrets),
        )
        for name, item in loaded.apps.items():  # say why a context is unusable, not "not found"
            build = item.app.spec.build
            if build is not None and build.context in failed and name in desired.errors:
                desired.errors[name] = failed[build.context]
        return desired

    def _file_sources(
        self, files: ManifestFiles, loaded: LoadResult
    ) -> dict[str, SourceDigest | str]:
        """Every ``spec.files`` git source's digest, or why it cannot be read (that app fails)."""
        sources = {
            entry.source
            for item in loaded.apps.values()
            for entry in item.app.spec.files
            if entry.source is not None
        }
        found: dict[str, SourceDigest | str] = {}
        for source in sorted(sources):
            try:
                found[source] = self._file_digest(files, source)
            except TrueupError as exc:
                found[source] = str(exc)
        return found

    def _env_files(
        self, files: ManifestFiles, loaded: LoadResult, secrets: SecretStore
    ) -> dict[str, EnvFile | str]:
        """Every ``spec.envFrom`` file's variables, or why it cannot be read (that app fails)."""
        paths = {e.file for item in loaded.apps.values() for e in item.app.spec.env_from}
        found: dict[str, EnvFile | str] = {}
        for path in sorted(paths):
            try:
                found[path] = self._env_file(files, path, secrets)
            except TrueupError as exc:
                found[path] = str(exc)
        return found

    def _env_file(self, files: ManifestFiles, path: str, secrets: SecretStore) -> EnvFile:
        """One ``spec.envFrom`` file read at the pass's revision (or on disk) and parsed: the
        one place its bytes become values (a SOPS file decrypted first: its values secret)."""
        if files.revision is None:
            root = self.source.worktree_root
            assert root is not None
            read = read_disk(root, path)
        else:
            read = self.source.read_files(files.revision, path)
        if len(read) != 1 or read[0].name:
            raise SourceError(f"env file {path!r} is a folder, not a file")
        if looks_encrypted(read[0].data):
            plain = secrets.repo_sops().decrypted(path).plaintext
            return replace(parse_env_file(path, plain), encrypted=True)
        return parse_env_file(path, read[0].data)

    def _file_digest(self, files: ManifestFiles, source: str) -> SourceDigest:
        if files.revision is None:
            root = self.source.worktree_root
            assert root is not None
            return digest_disk(root, source)
        return self.source.file_digest(files.revision, source)

    async def _with_file_contents(
        self, revision: str, desired: DesiredState, apps: set[str]
    ) -> DesiredState:
        """``desired`` with the ``spec.files`` contents of ``apps`` read at ``revision``."""
        wanted = {
            name: app
            for name, app in desired.apps.items()
            if name in apps and app.spec.get("files")
        }
        if not wanted:
            return desired
        updated = dict(desired.apps)
        for name, app in wanted.items():
            sources = {f.source for f in app.manifest.spec.files if f.source is not None}
            reads = {}
            for source in sources:
                reads[source] = await asyncio.to_thread(self.source.read_files, revision, source)
            contents = file_contents(app.manifest, reads, app.secret_files)
            updated[name] = replace(app, file_contents=contents)
        return replace(desired, apps=updated)

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
        apps backing off left out) after it is made, so observation stays one look.
        """
        started = time.monotonic()
        # the engine is observed while git is read and the state desired (they do not depend
        # on each other): a pass waits for the slower of the two, not for both
        observing = asyncio.create_task(self._observe())
        try:
            files = await self.manifest_files(rev=rev, worktree=worktree)
            desired, problems = await self.desire(files)
        except BaseException:
            observing.cancel()
            with suppress(Exception, asyncio.CancelledError):
                await observing
            raise
        observation = await observing
        if isinstance(observation, BaseException):
            raise observation
        current_routes, routes_error = await self.current_routes()
        options = PlanOptions(prune, allow_empty, current_routes)
        plan = await self._plan(desired, observation, options, plan_filter)
        refused = await self.target.refused(desired, plan)
        if refused:  # an app the engine refuses (a volume: targets.refusals) is left as it runs
            problems = sorted(problems + refusal_problems(desired, refused, files.files))
            desired = withhold(desired, refused)
            plan = await self._plan(desired, observation, options, plan_filter)
        result = PassResult(
            files.revision,
            plan,
            problems,
            desired=desired,
            observed=observation,
            routes=plan.routes,
            routes_error=routes_error,
        )
        if apply:
            sync = RouteSync(
                self.router,
                self.target.engine,
                desired,
                keep=kept_apps(desired, plan.skipped),
                current=current_routes or (),
            )
            await self._apply(result, desired, sync)
            await self._routes_stage(sync, result, fresh=await self._observe_after(result))
            if prune:
                await self._images_stage(result)
        result.duration_s = time.monotonic() - started
        _log_pass(result)
        return result

    async def _observe(self) -> Observation | BaseException:
        """The target's observation, or the KeyboardInterrupt/SystemExit it raised, which
        `run_pass` raises where it awaits it (out of a task the event loop would raise it
        itself, past the pass)."""
        try:
            return await self.target.observe()
        except (KeyboardInterrupt, SystemExit) as exc:
            return exc

    async def _plan(
        self,
        desired: DesiredState,
        observation: Observation,
        options: PlanOptions,
        plan_filter: PlanFilter | None,
    ) -> Plan:
        """The observation's plan of ``desired``, narrowed by ``plan_filter``, naming only
        the builds whose image the engine lacks."""
        plan = observation.plan(desired, options)
        if plan_filter is not None:
            plan = plan_filter(plan, desired)
        if any(f.path.startswith("files[") for c in plan.changes for f in c.fields):
            from controller.file_diffs import with_content_diffs  # difflib: only when needed

            specs = {name: app.spec for name, app in desired.apps.items()}
            plan = await asyncio.to_thread(
                with_content_diffs, plan, specs, observation.state, self.source.read_files
            )
        return await self._drop_cached_builds(plan)

    async def _apply(self, result: PassResult, desired: DesiredState, sync: RouteSync) -> None:
        """Run the plan's engine changes (route-only changes are the routes stage's)."""
        changes = tuple(c for c in result.plan.changes if c.action != "route")
        if not changes:
            return
        revision = result.revision
        assert revision is not None, "apply never runs on the working tree"

        async def read(context: str, dockerfile: str) -> bytes:
            return await self.read_context(revision, context, dockerfile)

        desired = await self._with_file_contents(revision, desired, {c.app for c in changes})
        setup = RunSetup(
            read,
            routes_changed=sync.retiring,
            concurrency=self.concurrency,
            bind_paths=tuple(self.policy.allowed_bind_paths),
        )
        runner = self.target.runner(desired, setup)
        result.outcomes = await runner.run(replace(result.plan, changes=changes))

    async def _observe_after(self, result: PassResult) -> ObservedState | None:
        """What the routes stage builds from: the pass's observation while nothing was
        applied, else a fresh one (kept in ``result.after``); None when the engine did not
        answer (the routes stage tries again and records the failure)."""
        if not result.outcomes:
            return result.observed.state if result.observed is not None else None
        try:
            result.after = await self.target.observe()
        except TrueupError:
            return None
        return result.after.state

    async def _images_stage(self, result: PassResult) -> None:
        """After a pass that built or replaced images, remove the instance's images no
        container uses beyond the newest ``image_keep`` per app; never when a manifest had
        problems (like pruning), never an image the desired state names, and only with a
        look at the engine after apply (`_observe_after`) to say which images are in use."""
        desired, after = result.desired, result.after
        if result.problems or desired is None or desired.load_failed or desired.invalid:
            return
        if after is None or not any(
            o.ok and (o.build == "built" or o.action in ("update", "delete"))
            for o in result.outcomes
        ):
            return
        in_use = {app.image for app in desired.apps.values()} | {c.image for c in after.rows}
        result.images = await prune_images(self.target.engine, in_use=in_use, keep=self.image_keep)

    async def _drop_cached_builds(self, plan: Plan) -> Plan:
        """A change names a build only when its image is not on the engine yet, so the plan
        (and `trueup diff`) says exactly whether a build will happen."""
        changes = []
        for change in plan.changes:
            if change.build is not None and await self.target.engine.image_exists(change.build.tag):
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


def _log_pass(result: PassResult) -> None:
    log.info(
        "reconcile_pass",
        revision=result.revision,
        changes=len(result.plan.changes),
        failed=len(result.failed),
        problems=len(result.problems),
        routes_error=result.routes_error,
        duration_s=round(result.duration_s, 3),
    )


def _sops_failed(inputs: ComposeInputs) -> bool:
    """True when loading with ``inputs`` met a SOPS file it could not decrypt."""
    sops = inputs.sops
    return isinstance(sops, RepoSops) and any(why is not None for why in sops.checked().values())


def resolution_problems(desired: DesiredState, loaded: LoadResult) -> list[Problem]:
    """Apps that loaded but could not be resolved (secret, policy), as located problems."""
    out: list[Problem] = []
    for app, message in sorted(desired.errors.items()):
        item = loaded.apps.get(app)
        file, line = (item.file, item.line) if item else ("(unknown)", 1)
        out.append(Problem(file, line, 1, f"app {app}: {message}"))
    return out

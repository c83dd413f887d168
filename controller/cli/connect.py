"""Where the command line meets the engine: the one call that opens its target (the seam of
`controller.targets`), and the one that builds the Reconciler of a one-shot pass (its source,
engine and router closed afterwards).

Kept apart from the commands so a change of what the engine seam returns, or of how a
Reconciler is built, is an edit here only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from controller.cli.groups import EngineOptions, PolicyOptions, RouterOptions, SourceOptions

if TYPE_CHECKING:
    from controller.reconciler import Reconciler
    from controller.targets.target import Target


def open_target(engine: EngineOptions) -> Target:
    """The target of the engine ``--runtime``/``--runtime-url`` name, for ``--instance``
    (`controller.targets.open_target`, which `trueup run` uses too)."""
    from controller.targets import open_target as open_engine_target

    return open_engine_target(engine)


@asynccontextmanager
async def pass_reconciler(
    engine: EngineOptions, source: SourceOptions, policy: PolicyOptions, routing: RouterOptions
) -> AsyncIterator[Reconciler]:
    """A Reconciler reading ``source``, driving ``engine`` and ``routing``'s proxy."""
    from controller.desired.secrets import load_digest_key
    from controller.reconciler import Reconciler
    from controller.routes import connect_router
    from controller.source import GitSource

    with GitSource(
        source.repo, state_dir=engine.state_dir, branch=source.branch, token_file=source.token_file
    ) as git:
        target = open_target(engine)
        router = connect_router(
            routing.router,
            instance=engine.instance,
            admin_url=routing.caddy_admin,
            listen=routing.proxy_listen,
            https=routing.proxy_https,
        )
        try:
            yield Reconciler(
                git,
                target,
                instance=engine.instance,
                path=source.path,
                secrets_dir=policy.secrets_dir,
                sops_age_key_files=policy.sops_age_key_files,
                policy=policy.policy(),
                router=router,
                cache_dir=engine.state_dir,
                digest_key=load_digest_key(engine.state_dir),
            )
        finally:
            await router.close()
            await target.engine.close()

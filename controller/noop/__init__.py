"""The memoized no-op `trueup apply`: a converged pass's inputs (the stamp), and the start-up
check that answers the identical invocation from it when none of them changed.

Every module here imports the standard library only: the fast path (`controller.noop.fast`)
runs before click, asyncio, structlog or the rest of trueup is imported.
"""

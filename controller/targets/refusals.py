"""Apps a target refuses after looking at its engine, before anything of them is applied.

Some checks need the engine: whether a ``volumeName`` volume exists, and whose it is
(`Target.refused`). A refused app is handled like one that failed to resolve: it moves to
``DesiredState.errors`` (left as it runs: neither started, stopped nor pruned), and its
message becomes a problem located at the line of its file that names the volume.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace

from controller.desired.resolve import DesiredApp, DesiredState
from controller.manifests.problems import Problem
from controller.planning import Plan

VolumeCheck = Callable[[str], Awaitable[str | None]]


def starting_apps(plan: Plan) -> frozenset[str]:
    """The apps ``plan`` starts a container of: the ones worth checking."""
    return frozenset(c.app for c in plan.changes if any(s.start for s in c.steps))


def changed_apps(plan: Plan) -> frozenset[str]:
    """The apps ``plan`` creates, updates, scales or heals (a Swarm service's changes)."""
    return frozenset(c.app for c in plan.changes if c.action not in ("delete", "route"))


async def refused_volumes(
    desired: DesiredState, apps: Iterable[str], check: VolumeCheck
) -> dict[str, str]:
    """``apps`` whose ``volumeName`` volume ``check`` refuses (`Runtime.check_volume`), with
    why; a volume the policy grants (``adopt_volumes``) is not asked about."""
    out: dict[str, str] = {}
    for name in sorted(apps):
        app = desired.apps.get(name)
        for volume, _ in volume_names(app) if app is not None else ():
            if app is not None and volume in app.adopt_volumes:
                continue
            refusal = await check(volume)
            if refusal is not None:
                out[name] = refusal
                break
    return out


def volume_names(app: DesiredApp) -> Iterator[tuple[str, str]]:
    """``(volumeName, name)`` of each ``volumeName`` mount of ``app`` (from the resolved spec,
    so a state restored from the cache needs no manifest model)."""
    for volume in app.spec.get("volumes") or ():
        if volume.get("volumeName"):
            yield str(volume["volumeName"]), str(volume.get("name", ""))


def withhold(desired: DesiredState, refused: Mapping[str, str]) -> DesiredState:
    """``desired`` without the ``refused`` apps, which become errors (left as they run)."""
    return replace(
        desired,
        apps={n: a for n, a in desired.apps.items() if n not in refused},
        errors={**desired.errors, **refused},
    )


def refusal_problems(
    desired: DesiredState, refused: Mapping[str, str], files: Mapping[str, bytes]
) -> list[Problem]:
    """One problem per refused app, at the first line of its file that names its volume."""
    out: list[Problem] = []
    for name, message in sorted(refused.items()):
        app = desired.apps.get(name)
        if app is None:
            continue
        pairs = list(volume_names(app))
        needles = [v for v, _ in pairs] + [f"{n}:" for _, n in pairs if n]
        line, column = _locate(files.get(app.file, b""), needles)
        out.append(Problem(app.file, line, column, f"app {name}: {message}"))
    return out


def _locate(data: bytes, needles: list[str]) -> tuple[int, int]:
    """(line, column) of the first of ``needles`` found in ``data`` (each tried in turn),
    else (1, 1)."""
    lines = data.decode("utf-8", "replace").splitlines()
    for needle in needles:
        for number, text in enumerate(lines, start=1):
            column = text.find(needle)
            if column >= 0:
                return number, column + 1
    return 1, 1

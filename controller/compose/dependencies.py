"""The checks between a project's services once each is translated: ``service_healthy`` on a
service that has a health check, dependencies on services whose profiles are active, and no
dependency cycle (every service of a cycle gets the error, at its ``depends_on``)."""

from __future__ import annotations

from collections.abc import Mapping

from controller.compose.context import Project, Translation


def check_dependencies(
    project: Project, translated: Mapping[str, Translation], active: set[str]
) -> None:
    """Report each broken dependency at the ``depends_on`` entry that makes it."""
    report = project.report
    graph: dict[str, list[str]] = {}
    for service, out in translated.items():
        for dep, path in out.healthy_deps.items():
            other = translated.get(dep)
            if other is not None and "healthCheck" not in other.spec:
                report.error(
                    path, f"service_healthy needs a healthcheck on {dep!r}, and it has none"
                )
        deps = [d.removeprefix(project.name + "-") for d in out.spec.get("dependsOn", [])]
        graph[service] = [d for d in deps if d in translated]
        if service in active:
            for i, dep in enumerate(deps):
                if dep not in active:
                    report.error(
                        out.compose_path(("spec", "dependsOn", i)),
                        "depends on a service whose profiles are not active",
                    )
    for cycle in _cycles(graph):
        shown = " -> ".join([*cycle, cycle[0]])
        for service in cycle:
            out = translated[service]
            report.error(
                out.compose_path(("spec", "dependsOn")), f"dependency cycle detected: {shown}"
            )


def _cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (Tarjan's, iterative), each in
    the order its members were first reached."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component, key=index.__getitem__))
    return found

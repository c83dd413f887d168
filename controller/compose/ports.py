"""A service's ``ports`` (short and long syntax, ranges, host IPs, UDP) and ``expose``, as
``spec.ports`` entries with stable generated names (``tcp-80``; ``tcp-80-8080`` when one
container port is published twice). A port published more than once on the same host port,
or exposed and published, is listed once.
"""

from __future__ import annotations

from typing import Any

from controller.compose import keys
from controller.compose.context import Project, Translation
from controller.compose.values import PortSpec, expand_ports, short_ports
from controller.manifests.yamlmarks import Path


def translate_ports(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    """``ports`` and ``expose`` of one service into ``out.spec["ports"]``, each named."""
    report = project.report
    specs: list[tuple[PortSpec, str | None, Path]] = []
    if "ports" in data:
        items = data["ports"]
        if not isinstance(items, list):
            report.error((*at, "ports"), "must be a list")
            items = []
        for i, item in enumerate(items):
            where = (*at, "ports", i)
            for spec, name in _port_entry(project, where, item):
                specs.append((spec, name, where))
    if "expose" in data:
        for i, item in enumerate(
            report.strings((*at, "expose"), data["expose"], numbers=True) or []
        ):
            try:
                exposed = short_ports(item.split("/")[0]) if ":" not in item else None
            except ValueError as exc:
                report.error((*at, "expose", i), str(exc))
                continue
            if exposed is None:
                report.error((*at, "expose", i), "expose takes container ports only")
                continue
            protocol = item.partition("/")[2] or "tcp"
            for spec in exposed:
                specs.append((PortSpec(spec.container, protocol), None, (*at, "expose", i)))
    ports: list[dict[str, Any]] = []
    seen: set[tuple[int, str, int | None, str | None]] = set()
    names: set[str] = set()
    for spec, name, where in specs:
        key = (spec.container, spec.protocol, spec.host_port, spec.host_ip)
        if key in seen or (spec.host_port is None and any(k[:2] == key[:2] for k in seen)):
            continue  # an exposed port also published, or listed twice
        seen.add(key)
        name = name or _port_name(spec, names)
        names.add(name)
        port: dict[str, Any] = {"name": name, "containerPort": spec.container}
        if spec.protocol != "tcp":
            port["protocol"] = spec.protocol
        if spec.host_port is not None:
            port["hostPort"] = spec.host_port
        if spec.host_ip is not None:
            port["hostIp"] = spec.host_ip
        out.origin(("spec", "ports", len(ports)), where)
        ports.append(port)
    if ports:
        out.spec["ports"] = ports
        out.origins.setdefault(("spec", "ports"), (*at, "ports"))


def _port_name(spec: PortSpec, taken: set[str]) -> str:
    """A stable name: ``tcp-80``, or ``tcp-80-8080`` when port 80 is published twice."""
    base = f"{spec.protocol}-{spec.container}"
    if base not in taken:
        return base
    name = f"{base}-{spec.host_port or 0}"
    n = 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _port_entry(project: Project, at: Path, item: object) -> list[tuple[PortSpec, str | None]]:
    report = project.report
    if isinstance(item, str | int) and not isinstance(item, bool):
        try:
            return [(p, None) for p in short_ports(item)]
        except ValueError as exc:
            report.error(at, str(exc))
            return []
    data = report.mapping(at, item, keys.PORT)
    if data is None:
        return []
    if "target" not in data:
        report.error(at, "target (the container port) is missing", key=True)
        return []
    target = report.text((*at, "target"), data["target"], numbers=True)
    published = data.get("published")
    host = (
        report.text((*at, "published"), published, numbers=True)
        if published not in (None, "")
        else None
    )
    ip = report.text((*at, "host_ip"), data["host_ip"]) if "host_ip" in data else None
    protocol = str(data.get("protocol", "tcp")).lower()
    if "mode" in data and data["mode"] not in ("host", "ingress"):
        report.error((*at, "mode"), "must be host or ingress")
    name = data.get("name")
    if target is None:
        return []
    try:
        specs = expand_ports(target, host, ip, protocol)
    except ValueError as exc:
        report.error(at, str(exc))
        return []
    if isinstance(name, str) and len(specs) == 1:
        return [(specs[0], name)]
    return [(p, None) for p in specs]

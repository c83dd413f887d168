"""One service, whole: its name checked, its fields translated (``compose.translate``), its
mounts (``compose.mounts``) and networks (``compose.scope``), and its ``x-trueup`` extensions
(routes, update, reload, suspend) carried into the manifest as written, so the manifest's
own models validate them.
"""

from __future__ import annotations

from typing import Any

from controller.compose import keys
from controller.compose.context import Project, Translation
from controller.compose.mounts import translate_mounts
from controller.compose.scope import is_dns_label, service_networks
from controller.compose.translate import translate_service
from controller.manifests.yamlmarks import Path


def build_app(project: Project, service: str, data: dict[str, Any]) -> Translation:
    """The manifest data of ``service``; its problems go to ``project.report``."""
    at: Path = ("services", service)
    name = project.app_name(service)
    if not is_dns_label(name) or not is_dns_label(service):
        project.report.error(
            at,
            f"app name {name!r} (<project>-<service>) is not a DNS label: use a-z, 0-9 and "
            "'-' in the service name, the whole at most 63 characters",
            key=True,
        )
    out = translate_service(project, service, data)
    translate_mounts(project, out, at, data)
    service_networks(project, out, at, data)
    if "x-trueup" in data:
        _extensions(project, out, (*at, "x-trueup"), data["x-trueup"])
    return out


def _extensions(project: Project, out: Translation, at: Path, value: object) -> None:
    found = project.report.mapping(at, value, keys.X_TRUEUP)
    if found is None:
        return
    for key, item in found.items():
        if key == "routes" and isinstance(item, list):
            item = [_route(out, r) for r in item]
        out.spec[key] = item
        out.mirrors[("spec", key)] = (*at, key)


def _route(out: Translation, route: object) -> object:
    """A route may name its port by number (``port: 80``): the port's generated name."""
    port = route.get("port") if isinstance(route, dict) else None
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(route, dict) or not isinstance(port, int) or isinstance(port, bool):
        return route
    number = port
    for port in out.spec.get("ports", []):
        if port["containerPort"] == number and port.get("protocol", "tcp") == "tcp":
            return {**route, "port": port["name"]}
    return {**route, "port": str(number)}

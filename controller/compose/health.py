"""A service's ``healthcheck`` as ``spec.healthCheck``: ``CMD`` and ``CMD-SHELL`` lists, a
plain string (a shell command), ``["NONE"]`` and ``disable: true`` (no check); Go durations;
fields left unset take Docker's defaults, which differ from trueup's own.
"""

from __future__ import annotations

from typing import Any

from controller.compose import keys
from controller.compose.context import Project, Translation
from controller.compose.values import go_duration
from controller.manifests.yamlmarks import Path

# Docker's defaults for a health check field compose leaves unset (trueup's own differ).
_HEALTH_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "startPeriod": 0.0}


def translate_healthcheck(project: Project, out: Translation, at: Path, value: object) -> None:
    """``value`` (the service's ``healthcheck``) into ``out.spec["healthCheck"]``."""
    report = project.report
    data = report.mapping(at, value, keys.HEALTHCHECK, keys.HEALTHCHECK_UNSUPPORTED)
    if data is None:
        return
    disable = report.boolean((*at, "disable"), data["disable"]) if "disable" in data else False
    if disable is not False:
        return  # disabled, or reported
    test = data.get("test")
    if test is None:
        report.error(at, "test is missing (or say disable: true)", key=True)
        return
    if isinstance(test, str):
        exec_ = ["/bin/sh", "-c", test]
    else:
        words = report.strings((*at, "test"), test)
        if not words:
            if words is not None:
                report.error((*at, "test"), "must not be empty")
            return
        if words[0] == "NONE":
            return
        if words[0] == "CMD" and len(words) > 1:
            exec_ = words[1:]
        elif words[0] == "CMD-SHELL" and len(words) == 2:
            exec_ = ["/bin/sh", "-c", words[1]]
        else:
            report.error(
                (*at, "test"),
                'must start with "CMD" (then the command), "CMD-SHELL" (then one shell '
                'string) or be ["NONE"]',
            )
            return
    check: dict[str, Any] = {"exec": exec_, **_HEALTH_DEFAULTS}
    for key, field in (
        ("interval", "interval"),
        ("timeout", "timeout"),
        ("start_period", "startPeriod"),
    ):
        if key in data:
            try:
                check[field] = go_duration(data[key])
            except ValueError as exc:
                report.error((*at, key), str(exc))
    if "retries" in data:
        retries = report.integer((*at, "retries"), data["retries"], 1, 100)
        if retries is not None:
            check["retries"] = retries
    out.put("healthCheck", check, at)

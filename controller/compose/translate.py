"""One compose service → the ``spec`` of a trueup ``App`` (manifest data, camelCase): image
and build, command and entrypoint, environment, restart, replicas, limits and the Swarm
endpoint mode, process options, labels, host powers, depends_on. Ports are in
``compose.ports``, the health check in ``compose.health``, mounts in ``compose.mounts``,
networks in ``compose.scope``.

Each field is checked where it is read; a problem is reported at the compose key and the
field left out, so every problem of the service is found.
"""

from __future__ import annotations

from typing import Any

from controller.compose import keys
from controller.compose.context import Project, Translation
from controller.compose.health import translate_healthcheck
from controller.compose.interpolate import secret_misuse
from controller.compose.ports import translate_ports
from controller.compose.values import (
    go_duration,
    ram_bytes,
    shell_words,
)
from controller.manifests.yamlmarks import Path

_ENV_FILE = frozenset({"path", "required"})
_RESTART = {
    "always": "always",
    "unless-stopped": "always",
    "no": "never",
    "on-failure": "on-failure",
}


def translate_service(project: Project, service: str, data: dict[str, Any]) -> Translation:
    """The manifest data of ``service``; problems go to ``project.report``."""
    out = Translation(service)
    at: Path = ("services", service)
    _image(project, out, at, data)
    for key, field in (("command", "command"), ("entrypoint", "entrypoint")):
        if key in data:
            words = _command(project, (*at, key), data[key])
            if words is not None:
                out.put(field, words, (*at, key))
    _environment(project, out, at, data)
    translate_ports(project, out, at, data)
    _restart(project, out, at, data)
    if "healthcheck" in data:
        translate_healthcheck(project, out, (*at, "healthcheck"), data["healthcheck"])
    _resources(project, out, at, data)
    _process(project, out, at, data)
    _depends_on(project, out, at, data)
    return out


def _image(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    report = project.report
    image = report.text((*at, "image"), data["image"], numbers=False) if "image" in data else None
    if "build" in data:
        build = _build(project, (*at, "build"), data["build"])
        if build is not None:
            out.put("build", build, (*at, "build"))
        if image is not None:
            report.warn((*at, "image"), "ignored: trueup builds the image and tags it itself")
    elif image is not None:
        out.put("image", image, (*at, "image"))
    elif "image" not in data:
        report.error(at, "a service needs an image or a build", key=True)


def _build(project: Project, at: Path, value: object) -> dict[str, Any] | None:
    report = project.report
    if isinstance(value, str):
        context = project.repo_path(at, value, "build context")
        return {"context": context} if context is not None else None
    data = report.mapping(at, value, keys.BUILD, keys.BUILD_UNSUPPORTED)
    if data is None:
        return None
    raw = report.text((*at, "context"), data.get("context", "."))
    context = project.repo_path((*at, "context"), raw, "build context") if raw else None
    if context is None:
        return None
    build: dict[str, Any] = {"context": context}
    if "dockerfile" in data:
        dockerfile = report.text((*at, "dockerfile"), data["dockerfile"])
        if dockerfile is not None:
            build["dockerfile"] = dockerfile
    if "args" in data:
        args = report.list_or_map((*at, "args"), data["args"])
        given = {k: v if v is not None else project.variables.get(k) for k, v in args.items()}
        build["args"] = {k: v for k, v in given.items() if v is not None}
    if "target" in data:
        target = report.text((*at, "target"), data["target"])
        if target is not None:
            build["target"] = target
    return build


def _command(project: Project, at: Path, value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shell_words(value)
        except ValueError as exc:
            project.report.error(at, str(exc))
            return None
    return project.report.strings(at, value)


def _environment(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    report = project.report
    if "env_file" in data:
        found = _env_files(project, (*at, "env_file"), data["env_file"])
        for i, (_, where) in enumerate(found):
            out.origin(("spec", "envFrom", i), where)
        if found:
            out.put("envFrom", [{"file": path} for path, _ in found], (*at, "env_file"))
    if "environment" not in data:
        return
    env: dict[str, Any] = {}
    given = report.list_or_map((*at, "environment"), data["environment"])
    for name, value in given.items():
        secret = project.secret_env.get((*at, "environment", name))
        if secret is None and value is None and name in project.secret_variables:
            secret = (project.secret_variables[name], name)
            if not secret[0]:
                report.error((*at, "environment", name), secret_misuse(name, ""))
                continue
        if secret is not None:  # a variable of an encrypted .env: read at resolve, as a secret
            env[name] = {"secretRef": {"file": secret[0], "key": secret[1]}}
            continue
        if value is None:
            value = project.variables.get(name)
            if value is None:
                report.warn(
                    (*at, "environment"), f"{name} has no value and no variable gives one: unset"
                )
                continue
        env[name] = value
    out.put("env", env, (*at, "environment"))


def _env_files(project: Project, at: Path, value: object) -> list[tuple[str, Path]]:
    """The ``env_file`` paths (repo-relative) with where each is written."""
    report = project.report
    items = value if isinstance(value, list) else [value]
    found: list[tuple[str, Path]] = []
    for i, item in enumerate(items):
        where = (*at, i) if isinstance(value, list) else at
        required = True
        if isinstance(item, dict):
            entry = report.mapping(where, item, _ENV_FILE, frozenset({"format"}))
            if entry is None:
                continue
            item = entry.get("path")
            flag = (
                report.boolean((*where, "required"), entry["required"])
                if "required" in entry
                else True
            )
            required = flag is not False
            where = (*where, "path")
        text = report.text(where, item, numbers=False)
        if text is None:
            continue
        if not required:
            report.error(where, "required: false is not supported by trueup (the file must exist)")
            continue
        path = project.repo_path(where, text, "env_file")
        if path is not None:
            found.append((path, where))
    return found


def _restart(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    where = (*at, "restart")
    if "restart" not in data:
        out.put("restartPolicy", "never", at)  # compose's default is "no"
        return
    value = data["restart"]
    text = "no" if value is False else project.report.text(where, value, numbers=False)
    if text is None:
        return
    base = text.split(":", 1)[0] if text.startswith("on-failure") else text
    if base not in _RESTART or (text != base and not text[len(base) + 1 :].isdigit()):
        project.report.error(
            where, f"{text!r} is not a restart policy (no, always, unless-stopped, on-failure[:N])"
        )
        return
    out.put("restartPolicy", _RESTART[base], where)


def _resources(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    report = project.report
    limits: dict[str, Any] = {}
    limits_at: Path = (*at, "deploy", "resources", "limits")
    if "deploy" in data:
        deploy = report.mapping(
            (*at, "deploy"), data["deploy"], keys.DEPLOY, keys.DEPLOY_UNSUPPORTED
        )
        if deploy is not None and "replicas" in deploy:
            replicas = report.integer((*at, "deploy", "replicas"), deploy["replicas"], 0, 1000)
            if replicas is not None:
                out.put("replicas", replicas, (*at, "deploy", "replicas"))
        if deploy is not None and "endpoint_mode" in deploy:
            _endpoint_mode(project, out, (*at, "deploy", "endpoint_mode"), deploy["endpoint_mode"])
        res = (deploy or {}).get("resources")
        if res is not None:
            found = report.mapping(
                (*at, "deploy", "resources"), res, keys.RESOURCES, keys.RESOURCES_UNSUPPORTED
            )
            if found is not None and "limits" in found:
                limits = (
                    report.mapping(limits_at, found["limits"], keys.LIMITS, keys.LIMITS_UNSUPPORTED)
                    or {}
                )
    if "scale" in data:
        scale = report.integer((*at, "scale"), data["scale"], 0, 1000)
        if scale is not None and out.spec.get("replicas", scale) != scale:
            report.error((*at, "scale"), "differs from deploy.replicas")
        elif scale is not None:
            out.put("replicas", scale, (*at, "scale"))
    resources: dict[str, Any] = {}
    for field, key, parse in (("memory", "mem_limit", ram_bytes), ("cpus", "cpus", _cpus)):
        given = [((*at, key), data.get(key)), ((*limits_at, field), limits.get(field))]
        values: list[tuple[Path, Any]] = []
        for where, source in given:
            if source is None:
                continue
            try:
                values.append((where, parse(source)))
            except ValueError as exc:
                report.error(where, str(exc))
        if len(values) == 2 and values[0][1] != values[1][1]:
            report.error(values[0][0], f"differs from deploy.resources.limits.{field}")
        elif values:
            resources[field] = values[0][1]
            out.origin(("spec", "resources", field), values[0][0])
    if resources:
        out.spec["resources"] = resources


def _endpoint_mode(project: Project, out: Translation, where: Path, value: object) -> None:
    """``deploy.endpoint_mode`` → ``spec.swarm.endpointMode`` (Swarm only; Docker and Podman
    ignore it, as Compose does without a swarm)."""
    text = project.report.text(where, value)
    if text is None:
        return
    if text not in ("vip", "dnsrr"):
        project.report.error(where, f"{text!r} is not an endpoint mode (vip, dnsrr)")
        return
    out.put("swarm", {"endpointMode": text}, where)
    out.origin(("spec", "swarm", "endpointMode"), where)


def _cpus(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a number of CPUs, e.g. 0.5")
    try:
        return float(value)
    except ValueError:
        raise ValueError("must be a number of CPUs, e.g. 0.5") from None


def _process(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    report = project.report
    for key, field in (
        ("user", "user"),
        ("working_dir", "workingDir"),
        ("stop_signal", "stopSignal"),
    ):
        if key in data:
            text = report.text((*at, key), data[key], numbers=False)
            if text is not None:
                out.put(field, text, (*at, key))
    for key, field in (("init", "init"), ("privileged", "privileged")):
        if key in data:
            flag = report.boolean((*at, key), data[key])
            if flag is not None:
                out.put(field, flag, (*at, key))
    if "stop_grace_period" in data:
        try:
            out.put(
                "stopGracePeriod",
                go_duration(data["stop_grace_period"]),
                (*at, "stop_grace_period"),
            )
        except ValueError as exc:
            report.error((*at, "stop_grace_period"), str(exc))
    if "labels" in data:
        labels = report.list_or_map((*at, "labels"), data["labels"])
        out.labels = {k: v or "" for k, v in labels.items()}
        out.origin(("metadata", "labels"), (*at, "labels"))
    if "cap_add" in data:
        caps = report.strings((*at, "cap_add"), data["cap_add"])
        if caps is not None:
            out.put("capAdd", [c.upper().removeprefix("CAP_") for c in caps], (*at, "cap_add"))
    if "network_mode" in data:
        mode = report.text((*at, "network_mode"), data["network_mode"], numbers=False)
        if mode in ("host", "none", "bridge"):
            out.put("networkMode", mode, (*at, "network_mode"))
        elif mode is not None:
            report.error(
                (*at, "network_mode"),
                f"{mode!r} is not supported by trueup (host, none or bridge)",
            )


def _depends_on(project: Project, out: Translation, at: Path, data: dict[str, Any]) -> None:
    report = project.report
    if "depends_on" not in data:
        return
    where = (*at, "depends_on")
    value = data["depends_on"]
    entries: dict[str, Path] = {}
    if isinstance(value, list):
        for i, name in enumerate(value):
            text = report.text((*where, i), name)
            if text is not None:
                entries[text] = (*where, i)
    elif isinstance(value, dict):
        for name, cond in value.items():
            entries[str(name)] = (*where, str(name))
            _condition(project, out, (*where, str(name)), str(name), cond)
    else:
        report.error(where, "must be a list of services or a mapping of service to condition")
    deps: list[str] = []
    for name, path in entries.items():
        if name not in project.services:
            report.error(path, f"no service named {name!r} in this file")
            continue
        if name == out.service:
            report.error(path, "a service cannot depend on itself")
            continue
        out.origin(("spec", "dependsOn", len(deps)), path)
        deps.append(project.app_name(name))
    if deps:
        out.put("dependsOn", deps, where)


def _condition(project: Project, out: Translation, at: Path, name: str, value: object) -> None:
    """One ``depends_on`` map entry: its condition (``service_healthy`` is recorded to be
    checked against the dependency's health check) and ``required``."""
    report = project.report
    spec = report.mapping(at, value, keys.DEPENDS_ON)
    if spec is None:
        return
    condition = spec.get("condition", "service_started")
    if condition == "service_healthy":
        out.healthy_deps[name] = (*at, "condition")
    elif condition == "service_completed_successfully":
        report.error(
            (*at, "condition"), "service_completed_successfully is not supported by trueup"
        )
    elif condition != "service_started":
        report.error(
            (*at, "condition"),
            f"{condition!r} is not a condition (service_started, service_healthy)",
        )
    if "required" in spec and report.boolean((*at, "required"), spec["required"]) is False:
        report.error((*at, "required"), "required: false is not supported by trueup")

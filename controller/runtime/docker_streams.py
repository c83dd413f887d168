"""The engine calls that stream or are multiplexed: logs, events, pulls, builds and exec.

They go through a `Transport`'s SDK clients (the streaming client, without a read deadline,
for logs, events, pulls and builds; the deadline client for exec and a log tail). `pull`,
`build` and `exec_in` are blocking: `DockerRuntime` runs them off the event loop with
`Transport.run`, which counts their requests and translates their errors. `container_logs`
and `container_events` are async iterators over `Transport.pump`. The SDK is imported on first
use only, so a pass that reads no logs and neither pulls, builds nor execs never loads it.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import structlog

from controller.errors import BuildFailed
from controller.runtime import docker_requests as req
from controller.runtime.base import BuildRequest, BuildResult, ExecResult, LogLine, RuntimeEvent
from controller.runtime.docker_answers import BuildOutput, LineBuffer, event_from, split_timestamp
from controller.runtime.transport import Transport

log = structlog.get_logger(__name__)

BUILD_LOG_TAIL = 20
"""Lines of a failed build's output its error carries."""


def pull(transport: Transport, image: str) -> None:
    """Pull ``image`` (``name:tag``, ``:latest`` when no tag). A registry that has no such
    image, refuses, or cannot be reached is the SDK's ``ImageNotFound``: the image cannot be
    had (an engine error of 5xx stays what it is)."""
    import docker.errors

    repository, tag = req.split_image(image)
    try:
        for chunk in transport.streams().pull(repository, tag=tag, stream=True, decode=True):
            if isinstance(chunk, dict) and chunk.get("error"):  # Podman: 200 + error
                raise docker.errors.ImageNotFound(f"cannot pull {image}: {chunk['error']}")
    except docker.errors.ImageNotFound:
        raise
    except docker.errors.APIError as exc:
        if exc.status_code is not None and exc.status_code < 500:
            raise
        # an unreachable or refusing registry: the image cannot be had, say so plainly
        raise docker.errors.ImageNotFound(f"cannot pull {image}: {exc.explanation or exc}") from exc
    log.info("image_pulled", image=image)


def build(client: Any, request: BuildRequest, emit: Callable[[str], None]) -> BuildResult:
    """Build ``request`` with the SDK ``client``; each output line goes to ``emit`` as the
    engine prints it. `BuildFailed` with the output's tail when a step fails."""
    context = request.context
    fileobj = io.BytesIO(context) if isinstance(context, bytes) else context
    output = BuildOutput()
    for chunk in client.build(fileobj=fileobj, **req.build_kwargs(request)):
        for line in output.feed(chunk):
            emit(line)
    if output.error:
        tail = output.lines[-BUILD_LOG_TAIL:]
        raise BuildFailed(f"build {request.tag}: {output.error}", log_tail=tail)
    image_id = output.image_id or str(client.inspect_image(request.tag)["Id"])
    return BuildResult(image_id=image_id, tag=request.tag, log=tuple(output.lines))


def exec_in(transport: Transport, container: str, command: Sequence[str]) -> ExecResult:
    """Run ``command`` in ``container``; the output is stdout and stderr together."""
    api = transport.client
    exec_id = api.exec_create(container, list(command), stdout=True, stderr=True)["Id"]
    output = api.exec_start(exec_id)
    code = api.exec_inspect(exec_id).get("ExitCode")
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
    return ExecResult(exit_code=int(code) if code is not None else -1, output=text)


async def container_logs(
    transport: Transport, container: str, *, tail: int | None, follow: bool
) -> AsyncIterator[LogLine]:
    """``container``'s output with the engine's timestamps, line by line (the last ``tail``
    lines, or all); with ``follow`` it goes on until the iterator is closed."""
    if not follow:
        raw: bytes = await transport.run(
            "logs",
            transport.client.logs,
            container,
            timestamps=True,
            tail=tail if tail is not None else "all",
            subject=container,
        )
        for line in raw.decode("utf-8", "replace").splitlines():
            when, text = split_timestamp(line)
            yield LogLine(container=container, text=text, time=when)
        return

    client = transport.streams()

    def open_stream() -> Any:
        return client.logs(
            container,
            stream=True,
            follow=True,
            timestamps=True,
            tail=tail if tail is not None else "all",
        )

    lines = LineBuffer()
    async for chunk in transport.pump("logs", open_stream, subject=container):
        for line in lines.feed(chunk):
            when, text = split_timestamp(line)
            yield LogLine(container=container, text=text, time=when)
    if lines.pending:
        when, text = split_timestamp(lines.pending)
        yield LogLine(container=container, text=text, time=when)


async def container_events(
    transport: Transport, instance: str, *, since: int
) -> AsyncIterator[RuntimeEvent]:
    """The container events of ``instance`` from ``since`` (seconds) on, as the engine
    reports them (`docker_answers.event_from`)."""
    client = transport.streams()
    filters = req.events_filters(instance)

    def open_stream() -> Any:
        return client.events(since=since, decode=True, filters=filters)

    async for raw in transport.pump("events", open_stream):
        event = event_from(raw, instance)
        if event is not None:
            yield event

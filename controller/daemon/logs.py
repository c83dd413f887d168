"""The one place that configures structlog.

JSON lines when stderr is not a terminal (for journald, Loki, ...), a readable console
renderer when it is. Modules get their logger with ``structlog.get_logger(__name__)`` and log
fixed snake_case event names with key-value data.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(
    *, level: str = "info", json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure structlog for the process; ``json=None`` picks JSON unless stderr is a TTY."""
    out = stream if stream is not None else sys.stderr
    use_json = (not out.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

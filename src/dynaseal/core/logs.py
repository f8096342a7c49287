"""One logging set-up for every process: the CLI, each service, each ``--workers`` worker.

Lines carry an ISO-8601 timestamp with the date and UTC offset. ``LOG_FORMAT=json`` turns
every line into one JSON object (``time``, ``level``, ``logger``, ``message``, ``pid``,
plus the request's fields — request id, tenant, event id, status, refusal, latency,
tokens — when the line belongs to a request), so a log pipeline reads every worker alike.

The set-up is a :func:`logging.config.dictConfig` dictionary because uvicorn applies the
same dictionary in each worker process it spawns (``log_config``): with nothing there,
workers would log nothing at all.
"""

from __future__ import annotations

import logging
import logging.config
import os
from datetime import UTC, datetime
from typing import Any

import orjson

#: Environment variable choosing the line format: ``text`` (default) or ``json``.
FORMAT_VARIABLE = "LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """``2026-11-28T10:15:02.114+00:00 INFO    dynaseal.access: POST /v1/... 200 ...``"""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields given with ``extra=`` become keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def chosen_format() -> str:
    """``LOG_FORMAT`` when valid; else ``text`` (the settings report the bad value)."""
    value = os.environ.get(FORMAT_VARIABLE, "text").strip().lower()
    return value if value in FORMATS else "text"


def logging_config(level: str = "info", fmt: str | None = None) -> dict[str, Any]:
    """The dictConfig of a Dynaseal process: one stderr handler on the root logger that
    every logger (uvicorn's included) propagates to."""
    if (fmt or chosen_format()) == "json":
        formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"}
    else:
        formatter = {"()": f"{__name__}.TextFormatter", "fmt": TEXT_FORMAT}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "filters": {"request": {"()": "dynaseal.core.access_log.RequestFields"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "filters": ["request"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's own handlers would print every line twice: propagate to ours.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # Alembic narrates each step at INFO; dynaseal.schema logs the line that matters.
            "alembic": {"level": max(level, "WARNING", key=logging.getLevelName)},
            # aiosqlite logs every statement with its parameters at DEBUG: end users'
            # conversations, password hashes, generated secrets. Never, whatever the level.
            "aiosqlite": {"level": "INFO"},
        },
    }


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Apply :func:`logging_config` to this process.

    A no-op when the root logger already has handlers (a program embedding Dynaseal, a
    test runner): their set-up wins.
    """
    if logging.getLogger().handlers:
        return
    logging.config.dictConfig(logging_config(level, fmt))

"""One logging setup for every command, so service logs read alike."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"


def configure_logging(level: str = "info") -> None:
    """Send every logger (uvicorn's included) through one readable root handler.

    A no-op when logging is already set up (an embedding program, a test runner).
    """
    logging.basicConfig(level=level.upper(), format=FORMAT, datefmt=DATE_FORMAT)
    # Alembic narrates each step at INFO; dynaseal.schema logs the one line that matters.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    # aiosqlite logs every statement with its parameters at DEBUG: end users' conversations,
    # password hashes, generated secrets. Never, whatever the level asked for.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)

"""Alembic environment of the backend's tables (see dynaseal.storage.migrations)."""

from dynaseal.storage.migrations import run_env

run_env("backend")

"""Options several commands share."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dynaseal.cli.output import EXIT_CONFIG, fail

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="SQLAlchemy URL of the database (sqlite:///file.db or postgresql://...). "
        "Overrides DATABASE_URL.",
        show_default="DATABASE_URL, else a SQLite file in the working directory",
    ),
]


def Flag(name: str, *, help: str) -> Any:
    """An on/off option given by its name alone (``--demo-data``, never ``--demo-data
    true``): no value placeholder in the help, so none is offered."""
    return typer.Option(name, help=help, metavar="", show_default=False)


JsonOutput = Annotated[bool, Flag("--json", help="Print the answer as JSON, for scripts.")]


def Password(envvar: str, help: str) -> Any:
    """``--password``, or the variable ``envvar``; its value is never shown in the help."""
    return typer.Option("--password", envvar=envvar, help=help, show_default=False)


def given(password: str | None, envvar: str) -> str:
    """The password, or end the command: it never prompts, so that it works without a
    terminal (CI, scripts)."""
    if not password:
        fail(f"no password: pass --password or set {envvar}", EXIT_CONFIG)
    return password

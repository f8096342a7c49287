"""Options several commands share."""

from __future__ import annotations

from typing import Annotated, Any

import typer

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

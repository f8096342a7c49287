"""Where the command writes: one console for results, errors in red, never a traceback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.table import Table

#: Results and progress go to stdout; ``soft_wrap`` keeps streamed text unbroken.
console = Console(soft_wrap=True, highlight=False)
#: Errors go to stderr so that piping the answer somewhere stays clean.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)

#: Exit status of a configuration error (matches a usage error's status).
EXIT_CONFIG = 2
#: Exit status of any other failure.
EXIT_FAILURE = 1


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``message`` in red on stderr and end the command with ``code``."""
    err_console.print(f"[red]error:[/red] [red]{escape(message)}[/red]")
    raise typer.Exit(code)


def text(value: str) -> None:
    """Print ``value`` exactly as given (no markup, no newline), as soon as it arrives."""
    console.print(value, end="", markup=False, highlight=False)


def table(*columns: str, rows: list[list[Any]]) -> None:
    """Print a table; cells are plain text (no markup) and ``None`` shows as blank.

    The first column (an id other commands take) is never wrapped or cut. On a terminal
    the table fits the window; piped or redirected, it is as wide as its content so that
    nothing is cut to "deli…" for the next program.
    """
    from rich.table import Column, Table

    first, *rest = columns
    grid = Table(Column(first, no_wrap=True), *rest)
    for row in rows:
        grid.add_row(*(escape("" if cell is None else str(cell)) for cell in row))
    print_table(grid)


def print_table(grid: Table) -> None:
    if console.is_terminal:
        console.print(grid)
    else:
        # Console.print never goes wider than the console: a console as wide as the table.
        width = console.measure(grid, options=console.options.update_width(1_000_000)).maximum
        Console(file=console.file, width=width, highlight=False).print(grid)


def as_json(value: Any) -> None:
    """Print ``value`` as indented JSON, nothing else (``--json``)."""
    console.print(json.dumps(value, indent=2, default=str), markup=False, highlight=False)

"""Where the command writes: one console for results, errors in red, never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

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

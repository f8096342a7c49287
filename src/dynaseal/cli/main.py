"""The ``dynaseal`` command line: one sub-command per job."""

from __future__ import annotations

from collections.abc import Callable

import typer

from dynaseal import __version__
from dynaseal.cli import deliveries
from dynaseal.cli.chat import chat
from dynaseal.cli.demo import demo
from dynaseal.cli.schema import migrate_command
from dynaseal.cli.services import backend, gateway
from dynaseal.storage.migrations import Service

app = typer.Typer(
    name="dynaseal",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
app.command(no_args_is_help=False)(demo)
_SERVICES: dict[Service, Callable[..., None]] = {"gateway": gateway, "backend": backend}
for _name, _serve in _SERVICES.items():
    # The service runs when no sub-command is given: `dynaseal gateway [options]`.
    _service = typer.Typer(rich_markup_mode="markdown")
    _service.callback(invoke_without_command=True)(_serve)
    _service.command("migrate")(migrate_command(_name))
    app.add_typer(_service, name=_name)
app.command(no_args_is_help=True)(chat)
app.add_typer(deliveries.app, name="deliveries")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dynaseal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Dynaseal: devices call cloud LLMs with short-lived dynamic keys, never the real key.

    Try `dynaseal demo` for a full round trip on this machine.
    """


if __name__ == "__main__":
    app()

"""The ``dynaseal`` command line: one sub-command per job.

Only typer and the command modules' signatures are imported here; what a command needs
(FastAPI, SQLAlchemy, the OpenAI SDK ...) is imported when it runs, so ``--help`` and
``--version`` answer in a fraction of a second.
"""

from __future__ import annotations

import typer

from dynaseal import __version__
from dynaseal.cli import admin, deliveries, delivery_worker
from dynaseal.cli.chat import chat
from dynaseal.cli.demo import demo
from dynaseal.cli.schema import migrate_command
from dynaseal.cli.services import backend, gateway
from dynaseal.cli.users import create_user

app = typer.Typer(
    name="dynaseal",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
app.command(no_args_is_help=False)(demo)
_services: dict[str, typer.Typer] = {}
for _name, _serve in (("gateway", gateway), ("backend", backend)):
    # The service runs when no sub-command is given: `dynaseal gateway [options]`.
    _service = _services[_name] = typer.Typer(rich_markup_mode="markdown")
    _service.callback(invoke_without_command=True)(_serve)
    _service.command("migrate")(migrate_command(_name))
    app.add_typer(_service, name=_name)
_services["backend"].command("create-user")(create_user)
_services["gateway"].command("worker")(delivery_worker.worker)
app.command(no_args_is_help=True)(chat)
app.add_typer(deliveries.app, name="deliveries")
app.add_typer(admin.app, name="admin")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dynaseal {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        metavar="",
        help="Print the version and exit.",
    ),
) -> None:
    """Dynaseal: devices call cloud LLMs with short-lived dynamic keys, never the real key.

    Try `dynaseal demo` for a full round trip on this machine.
    """


if __name__ == "__main__":
    app()

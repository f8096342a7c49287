"""``dynaseal demo``: the whole round trip in one process, for a first look.

Gateway and backend run on loopback in background threads, each with its own SQLite
file in a temporary directory; then the command plays the device over real HTTP, the
way an app would, and shows the usage callback the backend received
(:mod:`dynaseal.cli.round_trip`, imported when the command runs).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from dynaseal.cli.options import Flag
from dynaseal.cli.output import console, fail

DEFAULT_PROMPT = "Explain in one sentence what a dynamic key is."


def demo(
    gateway_port: Annotated[
        int, typer.Option(help="Port of the gateway (0 picks a free one).")
    ] = 8000,
    backend_port: Annotated[
        int, typer.Option(help="Port of the backend (0 picks a free one).")
    ] = 9000,
    prompt: Annotated[str, typer.Option(help="What the device asks the model.")] = DEFAULT_PROMPT,
    keep_data: Annotated[
        bool, Flag("--keep-data", help="Keep the demo's SQLite files and say where they are.")
    ] = False,
) -> None:
    """Run gateway, backend and device in one process and show a full round trip.

    Starts both services on 127.0.0.1 with throwaway databases and the original demo
    data, logs in as client1, gets a dynamic key, streams a chat completion from the
    gateway with the OpenAI SDK, then shows the usage callback the backend received.
    Uses the offline responder unless OPENAI_BASE_URL (and OPENAI_API_KEY) are set.
    """
    from rich.markup import escape

    from dynaseal.cli.progress import DemoFailed
    from dynaseal.cli.round_trip import round_trip
    from dynaseal.core.logs import configure_logging

    configure_logging("warning")
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-demo-"))
    try:
        with ExitStack() as stack:
            round_trip(stack, workdir, gateway_port, backend_port, prompt)
    except DemoFailed as exc:
        fail(str(exc))
    finally:
        if keep_data:
            console.print(f"demo data kept in {escape(str(workdir))}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

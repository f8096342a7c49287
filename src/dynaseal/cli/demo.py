"""``dynaseal demo``: the whole round trip in one process, for a first look.

Gateway and backend run on loopback in background threads, each with its own SQLite
file in a temporary directory; then the command plays the device over real HTTP, the
way an app would, and shows the usage callback the backend received
(:mod:`dynaseal.cli.round_trip`, imported when the command runs).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
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
    keep_running: Annotated[
        bool,
        Flag(
            "--keep-running",
            help="Keep the gateway and backend running after the round trip (until Ctrl-C), "
            "to look around in their web consoles.",
        ),
    ] = False,
    bind: Annotated[
        bool,
        Flag(
            "--bind",
            help="Then show device-bound keys: a key bound to the device's key pair, a "
            "child key derived offline for a sub-agent, and a copied key refused.",
        ),
    ] = False,
) -> None:
    """Run gateway, backend and device in one process and show a full round trip.

    Starts both services on 127.0.0.1 with throwaway databases and the original demo
    data, logs in as client1, gets a dynamic key, streams a chat completion from the
    gateway with the OpenAI SDK, then shows the usage callback the backend received and
    where the web consoles are (`--keep-running` keeps them up). `--bind` adds a device
    that proves possession of its own key pair (DPoP) and narrows its key for a sub-agent.
    Uses the offline responder unless OPENAI_BASE_URL (and OPENAI_API_KEY) are set.
    """
    from dynaseal.core.metrics_processes import single_process

    single_process()  # before prometheus-client is imported: two services, one process
    from rich.markup import escape

    from dynaseal.cli.progress import DemoFailed
    from dynaseal.cli.round_trip import round_trip
    from dynaseal.core.logs import configure_logging

    configure_logging("warning")
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-demo-"))
    try:
        with ExitStack() as stack:
            gateway_url, backend_url = round_trip(
                stack, workdir, gateway_port, backend_port, prompt
            )
            if bind:
                from dynaseal.cli.bound_demo import show_binding

                show_binding(backend_url, prompt)
            _show_consoles(gateway_url, backend_url, keep_running)
            if keep_running:
                _wait_for_interrupt()
    except DemoFailed as exc:
        fail(str(exc))
    finally:
        if keep_data:
            console.print(f"demo data kept in {escape(str(workdir))}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _show_consoles(gateway_url: str, backend_url: str, keep_running: bool) -> None:
    """Where the web consoles are, and the demo accounts to log in with (public)."""
    from dynaseal.core.original_demo import (
        DEMO_TENANT_PASSWORD,
        DEMO_TENANT_USERNAME,
        DEMO_USER_PASSWORD,
        DEMO_USER_USERNAME,
    )

    console.print(
        f"gateway console: {gateway_url}/console  "
        f"(log in as tenant {DEMO_TENANT_USERNAME}, password {DEMO_TENANT_PASSWORD})"
    )
    console.print(
        f"backend console: {backend_url}/console  "
        f"(log in as end user {DEMO_USER_USERNAME}, password {DEMO_USER_PASSWORD})"
    )
    if not keep_running:
        console.print("the demo stops now: `dynaseal demo --keep-running` keeps them open")


def _wait_for_interrupt() -> None:
    console.print("running until Ctrl-C ...")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("stopping")

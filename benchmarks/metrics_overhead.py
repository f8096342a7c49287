"""What the metrics cost a request: CPU time, measured, never guessed.

    python -m benchmarks.metrics_overhead                  # both measurements
    python -m benchmarks.metrics_overhead --requests 2000  # fewer gateway requests

1. **The hooks alone**: everything the metrics record for one chat completion (the
   access-log middleware's count and duration and in-flight gauge, the budget store
   timed twice, the upstream timed, the settled request's tokens and time to first
   token), called in a loop; in one process (values in memory) and as a ``--workers``
   process (values in ``PROMETHEUS_MULTIPROC_DIR`` files), each in its own interpreter.
2. **The whole gateway**, in this process: chat completions through its ASGI app (the
   offline responder upstream, SQLite, the demo tenant, budgets, ledger, no network),
   CPU time per request. This part uses only the gateway's public API, so the same
   command run on a checkout without metrics gives the "before" figure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import httpx

from dynaseal.core.logs import TEXT_FORMAT

if __package__ in (None, ""):  # run as a file: import `benchmarks` from the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

CHAT_PATH = "/v1/chat/completions"
_CHAT = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "Say hello."}]}


def hooks_per_request(requests: int) -> float:
    """Seconds of CPU the metrics hooks take for one chat completion."""
    from dynaseal.gateway.routes.chat import chat_completions

    from dynaseal.gateway.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "root_path": ""}
    scope["endpoint"] = chat_completions
    now = time.time()
    settled = SimpleNamespace(
        admission=SimpleNamespace(
            grant=SimpleNamespace(tenant_id="671249a93f1cf2f8bf9b2b82"), model="deepseek-chat"
        ),
        usage=SimpleNamespace(prompt_tokens=11, completion_tokens=8),
        timing=SimpleNamespace(started_at=now, first_token_at=now + 0.2),
        status="completed",
    )
    http = metrics.http
    started = time.process_time()
    for _ in range(requests):
        http.started()
        with metrics.budget_call("reserve"):
            pass
        metrics.upstream_answered("2xx", 0.01)
        metrics.settled(settled)
        with metrics.budget_call("release"):
            pass
        http.finished(scope, 200, 0.02, streamed=False)
    return (time.process_time() - started) / requests


def _hooks_in_a_fresh_interpreter(requests: int, multiprocess: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        code = (
            "from benchmarks.metrics_overhead import hooks_per_request\n"
            f"print(hooks_per_request({requests}))\n"
        )
        root = Path(__file__).resolve().parent.parent
        output = subprocess.run(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", code], cwd=root, env=env, check=True, capture_output=True
        )
    return float(output.stdout)


async def gateway_per_request(requests: int, access_log: bool) -> float:
    """Seconds of CPU the whole gateway takes for one (offline) chat completion."""
    from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
    from dynaseal.gateway.app import create_app
    from dynaseal.gateway.settings import GatewaySettings
    from dynaseal.keys import mint_key

    logging.getLogger("dynaseal.access").setLevel(logging.INFO if access_log else logging.WARNING)
    with tempfile.TemporaryDirectory() as directory:
        settings = GatewaySettings(
            database_url=f"sqlite+aiosqlite:///{directory}/gateway.db",
            secret_key="benchmark-secret-key-that-is-long-enough",
        )
        app = create_app(settings, demo=True)
        key = mint_key(
            DEMO_TENANT_API_KEY,
            tenant_id=DEMO_TENANT_ID,
            model="deepseek-chat",
            max_tokens=10**12,
            ttl_seconds=3600,
        ).token
        headers = {"Authorization": f"Bearer {key}"}
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:

                async def run(count: int) -> None:
                    for _ in range(count):
                        answer = await http.post(CHAT_PATH, json=_CHAT, headers=headers)
                        assert answer.status_code == 200, answer.text

                await run(max(200, requests // 10))  # warm up: caches, connections
                started = time.process_time()
                await run(requests)
                return (time.process_time() - started) / requests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hook-requests", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=5_000, help="through the gateway")
    parser.add_argument("--rounds", type=int, default=3, help="the gateway's, median kept")
    parser.add_argument("--skip-hooks", action="store_true", help="only the whole gateway")
    options = parser.parse_args(argv)
    # The access lines are formatted and written, as a service would, but to nowhere.
    with open(os.devnull, "w") as nowhere:
        logging.basicConfig(stream=nowhere, level=logging.WARNING, format=TEXT_FORMAT)
        return _measure(options)


def _measure(options: argparse.Namespace) -> int:
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPUs")
    if not options.skip_hooks:
        for multiprocess, where in ((False, "one process"), (True, "--workers (files)")):
            seconds = _hooks_in_a_fresh_interpreter(options.hook_requests, multiprocess)
            print(f"metrics hooks per request, {where}: {seconds * 1e6:.1f} µs CPU")
    for access_log in (False, True):
        rounds = sorted(
            asyncio.run(gateway_per_request(options.requests, access_log))
            for _ in range(options.rounds)
        )
        median = rounds[len(rounds) // 2]
        shown = ", ".join(f"{r * 1e6:.0f}" for r in rounds)
        print(
            f"gateway per request (in-process, offline upstream, access lines "
            f"{'on' if access_log else 'off'}): {median * 1e6:.0f} µs CPU "
            f"(median of {options.rounds} rounds: {shown})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

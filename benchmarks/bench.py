"""Orchestration: start the parties, run each measurement, print and save the results."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from rich.console import Console

from benchmarks import phases, session
from benchmarks.cpu import cpu_seconds
from benchmarks.load import LoadResult, Target, async_load, wrk_load, wrk_path
from benchmarks.meter import LOAD_EVENT_PREFIX
from benchmarks.nginx import nginx_path
from benchmarks.processes import Service, Services, free_port, raise_open_files, sigterm_as_exit
from benchmarks.rawhttp import build_request
from benchmarks.report import LoadRow, NonStreaming, Results, machine, render
from benchmarks.upstream import LONG_MODEL, SLOW_MODEL

T = TypeVar("T")

CHAT_PATH = "/v1/chat/completions"
MODEL = "deepseek-chat"
#: Tokens per benchmark key: large enough that no phase is ever refused for budget.
HUGE_BUDGET = 10**12
#: Keys the load rotates through, as many devices would.
LOAD_KEYS = 64
_MESSAGES = [{"role": "user", "content": "Say hello in sixteen words."}]
#: A chat-sized conversation (about 1.5 KB) for the relay-vs-Dynaseal comparison.
_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant inside a note-taking app. " * 6},
    {"role": "user", "content": "Summarise my notes from this week's planning meeting. " * 8},
    {"role": "assistant", "content": "Here is a summary of the planning meeting notes. " * 8},
    {"role": "user", "content": "Now turn that into a short list of action items."},
]


@dataclass(frozen=True, slots=True)
class Options:
    duration: float  # seconds per load measurement
    warm_up: float
    stream_samples: int
    open_streams: int
    hold_seconds: float
    completions: int
    generator: str  # "wrk" or "async"
    json_path: Path | None
    keep: bool = False  # keep the services' logs and databases
    workers: int | None = None  # run the gateway as `dynaseal gateway --workers N`
    database_url: str | None = None  # the gateway's database (default: a fresh SQLite)
    redis_url: str | None = None


def chat_body(model: str = MODEL, *, stream: bool = False) -> bytes:
    messages = _CONVERSATION if model == LONG_MODEL else _MESSAGES
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": 512}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(body)


def mint_load_keys(count: int) -> tuple[str, ...]:
    """Real dynamic keys of the demo tenant, the way a business backend mints them."""
    from dynaseal.core.original_demo import DEMO_TENANT_API_KEY, DEMO_TENANT_ID
    from dynaseal.gateway.demo_data import DEMO_TENANT_KID
    from dynaseal.keys import mint_key

    return tuple(
        mint_key(
            DEMO_TENANT_API_KEY,
            tenant_id=DEMO_TENANT_ID,
            model=(MODEL, SLOW_MODEL),
            max_tokens=HUGE_BUDGET,
            ttl_seconds=3600,
            event_id=f"{LOAD_EVENT_PREFIX}{uuid.uuid4().hex}",
            kid=DEMO_TENANT_KID,
        ).token
        for _ in range(count)
    )


def run_async(coroutine: Awaitable[T]) -> T:
    """The client side runs on uvloop too when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


class Bench:
    """The running parties plus the keys and options every measurement uses."""

    def __init__(self, services: dict[str, Any], options: Options, workdir: Path) -> None:
        self.upstream = services["upstream"]
        self.gateway = services["gateway"]
        self.backend = services["backend"]
        self.relay = services["relay"]
        self.bare = services["bare"]
        self.nginx = services.get("nginx")
        self.options = options
        self.workdir = workdir
        self.tokens = mint_load_keys(LOAD_KEYS)
        self.tenant_token = demo_tenant_token(self.gateway.url)

    def load(self, target: Target, connections: int) -> LoadResult:
        """Measure with the chosen generator (after a warm-up of the caller's)."""
        options = self.options
        if options.generator == "wrk":
            return wrk_load(target, connections, options.duration, self.workdir)
        return run_async(async_load(target, connections, options.duration))

    def paths(self) -> list[tuple[str, Service]]:
        """The ways to the upstream, measured one after the other at each concurrency."""
        found = [("direct", self.upstream), ("nginx", self.nginx), ("bare", self.bare)]
        return [(name, s) for name, s in (*found, ("gateway", self.gateway)) if s is not None]

    def load_row(self, name: str, service: Service, connections: int) -> LoadRow:
        """One path's load, with the CPU its processes used per request answered; the
        gateway's includes delivering the run's callbacks (and the backend's receiving
        them is counted apart)."""
        target = Target(service.port, CHAT_PATH, chat_body(), self.tokens)
        run_async(async_load(target, connections, self.options.warm_up))
        if name == "gateway":
            wait_for_empty_outbox(self.gateway.url, self.tenant_token)
        before = cpu_seconds(service.pid), cpu_seconds(self.backend.pid)
        result = self.load(target, connections)
        if name == "gateway":
            wait_for_empty_outbox(self.gateway.url, self.tenant_token)
        used = cpu_seconds(service.pid) - before[0], cpu_seconds(self.backend.pid) - before[1]
        answered = max(result.answered, 1)
        backend = used[1] * 1000 / answered if name == "gateway" else None
        return LoadRow(name, result, used[0] * 1000 / answered, backend)

    def non_streaming(self) -> list[NonStreaming]:
        return [
            NonStreaming(
                connections,
                [self.load_row(name, service, connections) for name, service in self.paths()],
            )
            for connections in (1, 16)
        ]

    def streaming(self) -> dict[str, phases.StreamTimings]:
        body = chat_body(stream=True)
        found = {}
        for name, service in (("direct", self.upstream), ("gateway", self.gateway)):
            request = Target(service.port, CHAT_PATH, body, self.tokens[:1]).requests()[0]
            found[name] = run_async(
                phases.stream_timings(
                    service.port, request, self.options.stream_samples, self.options.duration
                )
            )
        return found

    def key_create(self, access_token: str) -> LoadResult:
        target = Target(self.backend.port, "/v1/key/create", b"{}", (access_token,))
        run_async(async_load(target, 16, self.options.warm_up))
        return run_async(async_load(target, 16, self.options.duration))

    def memory(self) -> phases.MemoryResult:
        """Many devices, each with its own key (the gateway limits streams per key)."""
        body = chat_body(SLOW_MODEL, stream=True)
        requests = Target(self.gateway.port, CHAT_PATH, body, self.tokens).requests()
        return run_async(
            phases.hold_streams(
                self.gateway.pid,
                self.gateway.port,
                self.upstream.port,
                requests,
                self.options.open_streams,
                self.options.hold_seconds,
            )
        )

    def flows(self, access_token: str) -> dict[str, phases.FlowResult]:
        n = self.options.completions
        headers = {"content-type": "application/json", "authorization": f"Bearer {access_token}"}
        body = chat_body(LONG_MODEL)
        relay_chat = build_request("POST", CHAT_PATH, self.relay.port, headers, body)
        device = phases.DynasealDevice(
            self.backend.port, self.gateway.port, access_token, LONG_MODEL, CHAT_PATH, body
        )
        # The load phases leave a backlog of callbacks; the flows count their own.
        wait_for_empty_outbox(self.gateway.url, self.tenant_token)
        found = {
            "relay": run_async(phases.relay_flow(self.relay.port, relay_chat, n)),
            "dynaseal": run_async(phases.dynaseal_flow(device, n)),
        }
        set_callback_content(self.gateway.url, include=False)
        found["dynaseal_no_content"] = run_async(phases.dynaseal_flow(device, n))
        return found


def login(url: str, username: str, password: str) -> str:
    """The OAuth2 password form both services share; returns the access token."""
    reply = httpx.post(
        f"{url}/v1/user/login", data={"username": username, "password": password}, timeout=30
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def demo_tenant_token(gateway_url: str) -> str:
    from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME

    return login(gateway_url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)


def wait_for_empty_outbox(gateway_url: str, tenant_token: str, seconds: float = 300.0) -> None:
    """Until the gateway has delivered every pending callback (bounded in time)."""
    headers = {"authorization": f"Bearer {tenant_token}"}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending = httpx.get(
            f"{gateway_url}/v1/deliveries",
            params={"status": "pending", "limit": 1},
            headers=headers,
            timeout=30,
        ).json()["data"]
        if not pending:
            return
        time.sleep(0.5)


def set_callback_content(gateway_url: str, *, include: bool) -> None:
    """The demo tenant's choice of whether callbacks carry the generated text."""
    token = demo_tenant_token(gateway_url)
    reply = httpx.patch(
        f"{gateway_url}/v1/user/me",
        json={"callback_include_content": include},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    reply.raise_for_status()


def service_configs(workdir: Path, options: Options) -> dict[str, tuple[int, dict[str, Any]]]:
    # Started in this order and stopped in reverse: the gateway goes first, so it never
    # sends callbacks to a backend that has already gone.
    roles = ("upstream", "nginx", "bare", "backend", "relay", "gateway")
    ports = {role: free_port() for role in roles}
    url = {role: f"http://127.0.0.1:{port}" for role, port in ports.items()}
    gateway: dict[str, Any] = {
        "database_url": options.database_url or f"sqlite+aiosqlite:///{workdir / 'gateway.db'}",
        "upstream_url": url["upstream"],
        "callback_url": f"{url['backend']}/v1/callback/usage",
    }
    # As production runs it: `dynaseal gateway`, with its callback delivery worker process.
    gateway |= {"workers": options.workers or 1, "redis_url": options.redis_url}
    nginx = {"nginx": (ports["nginx"], {"upstream_port": ports["upstream"]})}
    return {
        "upstream": (ports["upstream"], {}),
        **(nginx if nginx_path() else {}),
        "bare": (ports["bare"], {"upstream_url": url["upstream"]}),
        "backend": (
            ports["backend"],
            {
                "database_url": f"sqlite+aiosqlite:///{workdir / 'backend.db'}",
                "gateway_url": url["gateway"],
                "key_budget_tokens": 1_000_000,
                "default_models": [MODEL, LONG_MODEL],
            },
        ),
        "relay": (ports["relay"], {"upstream_url": url["upstream"]}),
        "gateway": (ports["gateway"], gateway),
    }


def measure(bench: Bench, say: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement in turn; the many-streams one last, as it leaves a backlog."""
    from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME

    say("non-streaming load")
    non_streaming = bench.non_streaming()
    say("streaming timings")
    streaming = bench.streaming()
    access_token = login(bench.backend.url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
    say("/key/create")
    key_create = bench.key_create(access_token)
    say("relay vs Dynaseal")
    flows = bench.flows(access_token)
    say(f"a {session.TURNS}-turn session")
    sessions = session.measure(bench.gateway.url, bench.backend.url, bench.relay.url, LONG_MODEL)
    say(f"{bench.options.open_streams} open streams")
    memory = bench.memory()
    return {
        "non_streaming": non_streaming,
        "streaming": streaming,
        "key_create": key_create,
        "flows": flows,
        "sessions": sessions,
        "memory": memory,
    }


def run(options: Options, console: Console) -> Results:
    started = time.perf_counter()
    raise_open_files(2 * options.open_streams + 1024)
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-bench-"))
    try:
        with sigterm_as_exit(), Services(workdir) as services:
            console.print("[dim]starting upstream, relay, gateway and backend …[/dim]")
            bench = Bench(services.start(service_configs(workdir, options)), options, workdir)
            measured = measure(bench, lambda step: console.print(f"[dim]measuring {step} …[/dim]"))
    finally:
        if options.keep:
            console.print(f"[dim]logs and databases kept in {workdir}[/dim]")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    info = machine(options.generator)
    info["gateway settings"] = gateway_settings(options)
    return Results(machine=info, seconds=time.perf_counter() - started, **measured)


def gateway_settings(options: Options) -> str:
    database = "SQLite" if options.database_url is None else options.database_url.split(":")[0]
    shared = ", Redis" if options.redis_url else ""
    layout = f"dynaseal gateway --workers {options.workers or 1} + its delivery worker"
    return f"defaults: {database}{shared}, {layout}, demo tenant, callbacks on"


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark the Dynaseal gateway against a fast upstream on loopback.",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--duration", type=float, help="seconds per load measurement")
    parser.add_argument("--streams", type=int, help="concurrent open streams for the memory run")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "async"),
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write results here")
    parser.add_argument("--keep", action="store_true", help="keep the services' logs and databases")
    parser.add_argument(
        "--workers", type=int, help="run the gateway as `dynaseal gateway --workers N`"
    )
    parser.add_argument("--database-url", help="the gateway's (empty) database; default SQLite")
    parser.add_argument("--redis-url", help="Redis for the gateway (with --workers)")
    args = parser.parse_args(argv)
    quick = args.quick
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if wrk_path() else "async"
    elif generator == "wrk" and wrk_path() is None:
        parser.error("wrk is not installed (apt-get install wrk)")
    duration = args.duration or (1.0 if quick else 10.0)
    return Options(
        duration=duration,
        warm_up=min(1.0, duration / 4),
        stream_samples=20 if quick else 300,
        open_streams=args.streams or (50 if quick else 1000),
        hold_seconds=0.5 if quick else 3.0,
        completions=20 if quick else 200,
        generator=generator,
        json_path=args.json_path,
        keep=args.keep,
        workers=args.workers,
        database_url=args.database_url,
        redis_url=args.redis_url,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    console = Console(width=max(shutil.get_terminal_size((180, 40)).columns, 160))
    results = run(options, console)
    render(console, results)
    if options.json_path is not None:
        options.json_path.write_bytes(
            orjson.dumps(dataclasses.asdict(results), option=orjson.OPT_INDENT_2)
        )
    return 0

"""What a version of the gateway costs a request against another, side by side: by
default the working tree against ``main``, to price durable usage (every request awaits
its ledger commit; its intent is written while the upstream works).

    python -m benchmarks.durability                # working tree vs main, a minute or so
    python -m benchmarks.durability --before HEAD~3 --rounds 3 --duration 2

Both gateways (the ``--before`` revision taken with ``git archive``) run at once on
SQLite files of their own, in each budget mode in turn, against one fast upstream (which
also takes their callbacks); the
load alternates between them round after round (non-streaming chat, 1 and 16
connections) and the table gives the medians over the rounds and their ratios.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench import CHAT_PATH, chat_body, mint_load_keys, run_async
from benchmarks.load import LoadResult, Target, async_load
from benchmarks.processes import ROOT, Service, Services, free_port, spawn
from benchmarks.upstream import RELEASE_PATH

_MODES = ("memory", "database")
_CONNECTIONS = (1, 16)


@contextmanager
def _python_path(first: Path | None) -> Iterator[None]:
    """Children spawned inside import ``dynaseal`` from ``first`` (a checkout's src)."""
    saved = os.environ.get("PYTHONPATH")
    if first is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(first), saved]))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _checkout(revision: str, into: Path) -> Path:
    """``src`` as it is at ``revision``."""
    git = shutil.which("git") or "git"
    archive = subprocess.run(  # noqa: S603 - git itself, on the revision asked for
        [git, "archive", "--format=tar", revision, "src"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _gateway(
    services: Services, workdir: Path, name: str, src: Path | None, mode: str, upstream: str
) -> Service:
    home = workdir / name  # its log and database
    home.mkdir()
    config = {
        "database_url": f"sqlite:///{home}/gateway.db",
        "upstream_url": upstream,
        # A receiver that answers 200 at once (the upstream's release hook: no slow streams
        # here), so that delivering callbacks costs what it costs when the backend is up.
        "callback_url": upstream + RELEASE_PATH,
    }
    os.environ["BUDGET_STORE"] = mode  # read by the child's settings
    with _python_path(src):
        service = spawn("gateway", config, home, free_port())
    services.started.append(service)
    return service


def _load(port: int, tokens: tuple[str, ...], connections: int, seconds: float) -> LoadResult:
    target = Target(port, CHAT_PATH, chat_body(), tokens)
    run_async(async_load(target, connections, min(1.0, seconds / 4)))  # warm up
    return run_async(async_load(target, connections, seconds))


def _row(label: str, before: list[LoadResult], after: list[LoadResult]) -> str:
    def median(results: list[LoadResult], what: str) -> float:
        return statistics.median(getattr(r, what) for r in results)

    b_rps, a_rps = median(before, "rps"), median(after, "rps")
    b_p50, a_p50 = median(before, "p50_ms"), median(after, "p50_ms")
    errors = f"{sum(r.errors for r in before)}/{sum(r.errors for r in after)}"
    return (
        f"{label:<22} {b_rps:>9.0f} {a_rps:>9.0f} {a_rps / b_rps:>7.2f}x"
        f" {b_p50:>9.2f} {a_p50:>9.2f} {a_p50 / b_p50:>7.2f}x {errors:>12}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.durability")
    parser.add_argument("--before", default="main", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per load")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dynaseal-durability-"))
    tokens = mint_load_keys(64)
    print(f"{args.before} (before) vs the working tree (after); medians of {args.rounds} rounds")
    print(
        f"{'mode, connections':<22} {'rps bef':>9} {'rps aft':>9} {'ratio':>8}"
        f" {'p50 bef':>9} {'p50 aft':>9} {'ratio':>8} {'errors b/a':>12}"
    )
    try:
        before_src = _checkout(args.before, workdir)
        with Services(workdir) as services:
            upstream = services.start({"upstream": (free_port(), {})})["upstream"].url
            for mode in _MODES:
                pair = [
                    _gateway(services, workdir, f"before-{mode}", before_src, mode, upstream),
                    _gateway(services, workdir, f"after-{mode}", None, mode, upstream),
                ]
                for service in pair:
                    service.wait_ready()
                for connections in _CONNECTIONS:
                    results: list[list[LoadResult]] = [[], []]
                    for _ in range(args.rounds):
                        for i, service in enumerate(pair):
                            load = _load(service.port, tokens, connections, args.duration)
                            results[i].append(load)
                    print(_row(f"{mode}, {connections}", *results), flush=True)
                for service in pair:
                    service.stop()
    finally:
        os.environ.pop("BUDGET_STORE", None)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

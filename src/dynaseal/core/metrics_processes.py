"""prometheus-client's multi-process mode, for ``--workers``: where each worker process
keeps its values, so that a scrape answered by any of them adds up all of them.

prometheus-client chooses, when it is imported, to keep values in memory or in files
under ``PROMETHEUS_MULTIPROC_DIR``: the command line must settle the variable before
anything imports it — which is why this module does not.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: prometheus-client's own variable: where ``--workers`` processes keep their values.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROCESS_VARIABLE) or None


@contextmanager
def shared_by_workers() -> Iterator[str]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the worker processes about to start: the
    operator's, emptied (values of an earlier run would be added to this one's), or a
    temporary directory removed when the block ends. Enter it before the workers start:
    they inherit the variable and prometheus-client reads it when they import it."""
    given = multiprocess_directory()
    if given is not None:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="dynaseal-metrics-") as temporary:
        os.environ[MULTIPROCESS_VARIABLE] = temporary
        try:
            yield temporary
        finally:
            del os.environ[MULTIPROCESS_VARIABLE]


def single_process() -> None:
    """A service in one process keeps its values in memory: forget a
    ``PROMETHEUS_MULTIPROC_DIR`` meant for something else (another service sharing it
    would mix its values into ours). Call it before the service is imported."""
    os.environ.pop(MULTIPROCESS_VARIABLE, None)


def worker_gone(pid: int) -> None:
    """A worker ended: drop its live gauges (requests in flight ...) from the sums."""
    directory = multiprocess_directory()
    if directory is not None:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]

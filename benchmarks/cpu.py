"""CPU time of a process tree, read from ``/proc``, for CPU per request.

A service may be more than one process (uvicorn's ``--workers``, a delivery worker, nginx's
master and worker): the time of every process descending from the one the benchmark
started counts, plus what its already-reaped children used (``cutime``/``cstime``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """The fields after the command name (which may hold spaces), or None if gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None:
            found.setdefault(int(fields[1]), []).append(int(entry.name))
    return found


def tree(root: int) -> Iterator[int]:
    """``root`` and every process descending from it, alive now."""
    children = _children()
    pending = [root]
    while pending:
        pid = pending.pop()
        yield pid
        pending.extend(children.get(pid, ()))


def cpu_seconds(root: int) -> float:
    """User + system time of the tree so far (0.0 where ``/proc`` cannot be read)."""
    ticks = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields is not None:  # utime, stime, cutime, cstime: fields 14-17 of stat
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / _TICKS

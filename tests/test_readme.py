"""The README runs as written: every ```bash and ```python block of every section, in an
empty directory, unless it is marked ``<!-- not-run: why -->`` (see support/readme.py).

A new README section needs nothing here: its blocks run as part of this test.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.readme import RUNNABLE, Section, failed_line, sections, stray_markers

README = Path(__file__).parent.parent / "README.md"
SECTIONS = sections(README)
#: What a block may be fenced as; anything else (``sh``, ``py`` ...) would silently not run.
#: ``toml`` and ``js`` are shown, never run (a file's contents, a page's code).
LANGUAGES = {*RUNNABLE, "json", "text", "toml", "js", ""}
SECTION_TIMEOUT_SECONDS = 300


def test_every_block_is_run_or_says_why_not() -> None:
    assert stray_markers(README) == [], "not-run markers must sit right above a code block"
    for section in SECTIONS:
        for block in section.blocks:
            assert block.language in LANGUAGES, f"README line {block.line}: ```{block.language}"
    assert sum(len(s.runnable) for s in SECTIONS) >= 10  # the harness found the blocks


@functools.cache
def _namespace_command() -> list[str] | None:
    """How to get a network namespace of our own (root, or an unprivileged user one)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    command = ["unshare", "--net"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    probe = subprocess.run([*command, "true"], capture_output=True, timeout=10)
    return command if probe.returncode == 0 else None


def _isolated() -> list[str]:
    command = _namespace_command()
    if command is None:
        message = "the README test needs a network namespace (unshare, iproute2)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return command


@pytest.mark.parametrize(
    "section", [s for s in SECTIONS if s.runnable], ids=lambda s: s.title.split(":")[0]
)
def test_readme_section_runs(section: Section, tmp_path: Path) -> None:
    workdir, home = tmp_path / "work", tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    script = tmp_path / "section.sh"
    script.write_text(section.script())
    env = {
        # The installed `dynaseal` and `python` first, then the system's tools only.
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp_path),
    }
    # Files, not pipes: servers a block leaves running in the background keep them open.
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*_isolated(), "bash", "-c", f'ip link set lo up && exec bash "{script}"'],
            cwd=workdir,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the servers a block starts with & go with the group
        )
        try:
            process.wait(timeout=SECTION_TIMEOUT_SECONDS)
        finally:
            _stop_group(process.pid)
    stdout, stderr = out.read_text(), err.read_text()
    assert process.returncode == 0, (
        f"README section {section.title!r}: the block at README line "
        f"{failed_line(stderr)} failed (exit {process.returncode})\n"
        f"--- stdout\n{stdout[-4000:]}\n--- stderr\n{stderr[-6000:]}"
    )


def _stop_group(group: int) -> None:
    """SIGTERM to everything the section started, SIGKILL to what is still there after."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGTERM:
            for _ in range(100):
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

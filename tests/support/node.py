"""Running JavaScript with node and the official ``openai`` npm package (and esbuild),
installed by ``npm install --prefix tests/web`` (``.ci/run`` does it). Without them the
tests skip, saying why; in CI (CI=true) they fail instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_MODULES = Path(__file__).resolve().parents[1] / "web" / "node_modules"


def node_modules() -> Path:
    """The installed packages; skips (or fails in CI) when node or they are missing."""
    problem = None
    if shutil.which("node") is None:
        problem = "node is not installed (apt-get install nodejs npm)"
    elif not (NODE_MODULES / "openai").is_dir() or not (NODE_MODULES / "esbuild").is_dir():
        problem = "the test's npm packages are missing: npm install --prefix tests/web"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return NODE_MODULES


def run_node(script: str, directory: Path, env: dict[str, str] | None = None) -> str:
    """Run ``script`` as an ES module in ``directory`` (where ``openai`` is importable)."""
    modules = node_modules()
    if not (directory / "node_modules").exists():
        (directory / "node_modules").symlink_to(modules)
    (directory / "script.mjs").write_text(script)
    done = subprocess.run(
        ["node", "script.mjs"],
        cwd=directory,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout

"""The README's section on device-bound keys and child keys, run as a reader would: its
Python and JavaScript blocks against a real gateway and backend on loopback, with the
fake upstream counting what reached it. (tests/test_readme.py runs the Python blocks
too, with the README's own servers; node runs only here.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.backend import backend_for
from support.readme import Section, sections
from support.servers import ServerThread
from support.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "Device-bound keys and child keys"
NODE_MODULES = ROOT / "docs" / "examples" / "node_modules"
#: The backend address the snippets use, replaced by the test backend's.
DOCUMENTED_BACKEND = "http://127.0.0.1:9000"


def snippets(language: str) -> list[str]:
    section: Section = next(s for s in sections(README) if s.title == SECTION)
    return [block.code for block in section.blocks if block.language == language]


@pytest.fixture(scope="module")
def backend_url(gateway: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backend_for(tmp_path_factory.mktemp("docs-backend"), gateway.url) as url:
        yield url


def run(command: list[str], cwd: Path) -> list[str]:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def test_the_section_has_the_snippets_this_test_runs() -> None:
    assert len(snippets("python")) == 2 and len(snippets("js")) == 1


def test_the_device_client_snippet_runs(
    backend_url: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    code = snippets("python")[0].replace(DOCUMENTED_BACKEND, backend_url)
    (tmp_path / "snippet.py").write_text(code)
    printed = run([sys.executable, "snippet.py"], tmp_path)
    assert len(printed) == 2 and all(printed)  # the bound device's answer, the child's
    assert upstream.count == 2
    assert (tmp_path / "device-key.pem").stat().st_mode & 0o077 == 0


def test_the_pyjwt_snippet_runs_and_its_copied_key_is_refused(
    backend_url: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    code = snippets("python")[1].replace(DOCUMENTED_BACKEND, backend_url)
    (tmp_path / "snippet.py").write_text(code)
    answer, challenge = run([sys.executable, "snippet.py"], tmp_path)
    assert answer and 'error="invalid_dpop_proof"' in challenge
    assert upstream.count == 1  # the thief's request never reached it


def test_the_javascript_snippet_runs(
    backend_url: str, upstream: FakeUpstream, tmp_path: Path
) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "openai").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install node and `npm install --prefix docs/examples`")
        pytest.skip("needs node and `npm install --prefix docs/examples`")
    code = snippets("js")[0].replace(DOCUMENTED_BACKEND, backend_url)
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    (tmp_path / "snippet.mjs").write_text(code)
    printed = run(["node", "snippet.mjs"], tmp_path)
    assert len(printed) == 1 and printed[0]
    assert upstream.count == 1

"""The snippets of docs/binding.md, run as a reader would: each Python and JavaScript
block against the real backend and a stand-in gateway that checks every proof."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.devices import _fresh_stand_in, backend_url, stand_in
from support.stand_in_gateway import StandInGateway

__all__ = ["_fresh_stand_in", "backend_url", "stand_in"]  # fixtures used here

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "binding.md"
NODE_MODULES = ROOT / "docs" / "examples" / "node_modules"
#: The backend address the snippets use, replaced by the test backend's.
DOCUMENTED_BACKEND = "http://127.0.0.1:9000"


def snippets(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)


def run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_doc_has_the_snippets_this_test_runs() -> None:
    assert len(snippets("python")) == 3 and len(snippets("js")) == 1


@pytest.mark.parametrize(
    ("index", "proofs", "chain"),
    [
        (0, 1, 1),  # the device client, bound: a proof with its request
        (1, 1, 1),  # the plain OpenAI SDK and PyJWT: the same
        (2, 0, 2),  # a child key (a bearer key) charged to itself and its parent
    ],
)
def test_python_snippet_runs(
    index: int,
    proofs: int,
    chain: int,
    backend_url: str,
    stand_in: StandInGateway,
    tmp_path: Path,
) -> None:
    code = snippets("python")[index].replace(DOCUMENTED_BACKEND, backend_url)
    (tmp_path / "snippet.py").write_text(code)
    assert run([sys.executable, "snippet.py"], tmp_path).strip() == "hi"
    assert not stand_in.refused and len(stand_in.proofs) == proofs
    assert [len(charged) for charged in stand_in.charged] == [chain]


def test_javascript_snippet_runs(
    backend_url: str, stand_in: StandInGateway, tmp_path: Path
) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "openai").is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install node and `npm install --prefix docs/examples`")
        pytest.skip("needs node and `npm install --prefix docs/examples`")
    code = snippets("js")[0].replace(DOCUMENTED_BACKEND, backend_url)
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    (tmp_path / "snippet.mjs").write_text(code)
    assert run(["node", "snippet.mjs"], tmp_path).strip() == "hi"
    assert len(stand_in.proofs) == 1 and not stand_in.refused

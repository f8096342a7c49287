"""The README's shell and Python blocks, read so that a test can run them.

Every ```bash and ```python block runs, unless the line just above it is an HTML comment
``<!-- not-run: why -->`` (a real upstream, the production database, the test suite
itself ...). Blocks are grouped by ``## `` section: the runnable blocks of one section
run in order as one bash script (Python blocks through ``python -``), so a server a
block starts in the background (``&``) serves the blocks after it. Each section runs in
an empty directory of its own, with a fresh HOME and a network namespace of its own, so
the README's ports (8000, 9000) are free and nothing left over from another run helps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUNNABLE = ("bash", "python")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<why>.+?)\s*-->$")
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
_MARKER = "### README line"


@dataclass(frozen=True)
class Block:
    language: str
    line: int  # of the opening fence, 1-based
    code: str
    not_run: str | None  # the reason it is not run, if marked


@dataclass
class Section:
    title: str
    line: int
    blocks: list[Block] = field(default_factory=list)

    @property
    def runnable(self) -> list[Block]:
        return [b for b in self.blocks if b.language in RUNNABLE and b.not_run is None]

    def script(self) -> str:
        """One bash script running the section's blocks in order; each announces its
        README line on stderr, so a failure names the block."""
        parts = ["set -euo pipefail"]
        for block in self.runnable:
            parts.append(f'echo "{_MARKER} {block.line}" >&2')
            if block.language == "python":
                parts.append(f"python - <<'README_PYTHON_EOF'\n{block.code}README_PYTHON_EOF")
            else:
                parts.append(block.code)
        return "\n".join(parts) + "\n"


def failed_line(stderr: str) -> int | None:
    """The README line of the block that was running when the script stopped."""
    lines = re.findall(rf"^{_MARKER} (\d+)$", stderr, flags=re.MULTILINE)
    return int(lines[-1]) if lines else None


class ReadmeError(ValueError):
    """The README's markup is not what the harness understands (say where)."""


def sections(path: Path) -> list[Section]:
    """The README's ``## `` sections and their fenced blocks."""
    found: list[Section] = [Section("(before the first section)", 1)]
    lines = path.read_text().splitlines()
    previous = ""  # the last non-blank line outside a block
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line.strip())
        if fence is None:
            if line.startswith("## "):
                found.append(Section(line[3:].strip(), index + 1))
            if line.strip():
                previous = line.strip()
            index += 1
            continue
        indent = len(line) - len(line.lstrip())
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        if index == len(lines):
            raise ReadmeError(f"README line {start + 1}: a code block is never closed")
        marked = NOT_RUN.match(previous)
        found[-1].blocks.append(
            Block(
                fence["lang"],
                start + 1,
                "\n".join(body) + "\n",
                marked["why"] if marked else None,
            )
        )
        previous = ""
        index += 1
    return [s for s in found if s.blocks]


def stray_markers(path: Path) -> list[int]:
    """Lines of ``not-run`` markers that are not right above a code block."""
    lines = path.read_text().splitlines()
    stray = []
    for number, line in enumerate(lines, 1):
        if NOT_RUN.match(line.strip()):
            following = next((n for n in lines[number:] if n.strip()), "")
            if not following.strip().startswith("```"):
                stray.append(number)
    return stray

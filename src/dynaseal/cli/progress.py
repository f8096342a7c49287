"""Numbered progress lines (``[2/6] starting backend ... ok``) that name a failed step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.markup import escape

from dynaseal.cli.output import console


class StepFailed(Exception):
    """A step went wrong; the message says what, for a person to read."""


class DemoFailed(Exception):
    """The run stopped at a step; the message names the step and the reason."""


class Step:
    """Lets a step add a short note after its ``ok``."""

    def __init__(self) -> None:
        self.note = ""


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    @contextmanager
    def step(
        self,
        title: str,
        *,
        expected: tuple[type[Exception], ...] = (),
        streams: bool = False,
    ) -> Iterator[Step]:
        """Print the step's title, then ``ok`` or ``failed``.

        :class:`StepFailed` and the ``expected`` exceptions become :class:`DemoFailed`
        naming this step; anything else is a bug and propagates. A step that ``streams``
        output gets its title on a line of its own.
        """
        number = f"[{self.done + 1}/{self.total}]"
        console.print(f"{escape(number)} {escape(title)} ...", end="\n" if streams else " ")
        current = Step()
        failures: tuple[type[Exception], ...] = (StepFailed, *expected)
        try:
            yield current
        except failures as exc:
            console.print("[red]failed[/red]")
            raise DemoFailed(f"step {number} ({title}) failed: {exc}") from None
        self.done += 1
        note = f" ({escape(current.note)})" if current.note else ""
        console.print(f"[green]ok[/green]{note}")

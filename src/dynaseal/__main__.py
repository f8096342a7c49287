"""``python -m dynaseal`` is the ``dynaseal`` command."""

from dynaseal.cli.main import app

app(prog_name="dynaseal")

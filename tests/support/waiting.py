"""Waiting for what happens in the background (ledger writes, refusal counts, callbacks)
without sleeping a fixed time: poll until it is there, or give up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll until ``check`` returns something truthy; its last result either way."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)

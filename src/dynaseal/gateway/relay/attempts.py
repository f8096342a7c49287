"""One try at an upstream deployment, as the ledger row records it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    #: The HTTP status the deployment answered, or what went wrong before it could
    #: (``connect_error``, ``timeout``, ``broken``: it failed before the first byte).
    outcome: int | str
    latency_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "status": self.outcome,
            "latency_ms": self.latency_ms,
        }

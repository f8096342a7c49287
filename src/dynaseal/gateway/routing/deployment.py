"""One deployment of a model: its upstream, what it serves, and whether it is resting.

A deployment that fails ``cooldown_failures`` times in a row is skipped for
``cooldown_seconds``; afterwards one more failure sends it back to rest, one success
makes it whole again. The state is the process's own: each replica judges for itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dynaseal.gateway.endpoints.base import EndpointName
from dynaseal.gateway.relay.upstream import Upstream
from dynaseal.gateway.routing.config import ANY_MODEL


@dataclass(eq=False)
class Deployment:
    name: str
    #: The public model name it serves (``*``: any model no other deployment names).
    model: str
    upstream: Upstream
    endpoints: frozenset[EndpointName]
    weight: float = 1.0
    #: The model's name upstream; ``None``: the public name as the device sent it.
    upstream_model: str | None = None
    cooldown_failures: int = 3
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = 0
    _resting_until: float = field(default=0.0)

    @property
    def catch_all(self) -> bool:
        return self.model == ANY_MODEL

    def resting(self) -> bool:
        return self.clock() < self._resting_until

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self.cooldown_failures:
            self._resting_until = self.clock() + self.cooldown_seconds
            self._failures = self.cooldown_failures - 1  # on probation when it comes back

    def succeeded(self) -> None:
        self._failures = 0
        self._resting_until = 0.0

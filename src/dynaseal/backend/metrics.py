"""The reference backend's Prometheus metrics: its HTTP requests (counted by the shared
access-log middleware), the usage callbacks it received and the keys it minted."""

from __future__ import annotations

from typing import Literal

from dynaseal.core.metrics import ServiceMetrics

#: What became of a usage callback: stored; a duplicate of one stored before (a retried
#: delivery); a test event; refused for its signature; refused as malformed.
CallbackOutcome = Literal["stored", "duplicate", "test", "invalid_signature", "malformed"]
CALLBACK_OUTCOMES: tuple[CallbackOutcome, ...] = (
    "stored",
    "duplicate",
    "test",
    "invalid_signature",
    "malformed",
)


class BackendMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__()
        callbacks = self.counter(
            "dynaseal_backend_callbacks_received_total",
            "Usage callbacks received from the gateway, by outcome.",
            ("outcome",),
        )
        self._callbacks = {outcome: callbacks.labels(outcome) for outcome in CALLBACK_OUTCOMES}
        self._keys = self.counter(
            "dynaseal_backend_keys_minted_total", "Dynamic keys minted for end users."
        )

    def callback_received(self, outcome: CallbackOutcome, events: int = 1) -> None:
        """``events``: a batch counts each usage event it carries."""
        self._callbacks[outcome].inc(events)

    def key_minted(self) -> None:
        self._keys.inc()

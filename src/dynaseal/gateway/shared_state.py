"""Redis, the hot state gateway replicas share (budgets, use counts, rate limits), and
what happens when it is gone: see :mod:`dynaseal.core.shared_redis`, which the backend
uses too."""

from dynaseal.core.shared_redis import (
    RETRY_AFTER_SECONDS,
    connect,
    fail_closed,
    shared_state_unavailable,
)

__all__ = ["RETRY_AFTER_SECONDS", "connect", "fail_closed", "shared_state_unavailable"]

"""Throttling password guessing: failed logins are counted per account and per client
address in a fixed window; past the limit the login answers 429 with ``Retry-After``
without even checking the password.

Counts live in the process (a multi-replica deployment shares them through Redis in
production mode); a success clears the account's count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.requests import Request

from dynaseal.core.errors import APIError, unauthorized
from dynaseal.core.settings import ServiceSettings

T = TypeVar("T")

_MAX_TRACKED = 100_000


@dataclass(slots=True)
class _Window:
    started: float
    failures: int


class LoginThrottle:
    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 30,
        window_seconds: float = 300.0,
    ) -> None:
        self._limits = {"account": per_account, "address": per_address}
        self._window = window_seconds
        self._counts: dict[tuple[str, str], _Window] = {}

    @classmethod
    def for_service(cls, settings: ServiceSettings) -> LoginThrottle:
        return cls(
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            window_seconds=settings.login_failure_window_seconds,
        )

    def _current(self, kind: str, key: str, now: float) -> _Window | None:
        window = self._counts.get((kind, key))
        if window is not None and now - window.started >= self._window:
            del self._counts[(kind, key)]
            return None
        return window

    def check(self, account: str, address: str) -> None:
        """Raise 429 if either the account or the address is over its limit."""
        now = time.monotonic()
        for kind, key in (("account", account.lower()), ("address", address)):
            window = self._current(kind, key, now)
            if window is not None and window.failures >= self._limits[kind]:
                retry_after = math.ceil(window.started + self._window - now)
                raise APIError(
                    429,
                    f"Too many failed logins; try again in {retry_after} seconds.",
                    code="too_many_login_attempts",
                    type="rate_limit_error",
                    headers={"Retry-After": str(retry_after)},
                )

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        if len(self._counts) > _MAX_TRACKED:
            self._counts.clear()
        for kind, key in (("account", account.lower()), ("address", address)):
            window = self._current(kind, key, now)
            if window is None:
                self._counts[(kind, key)] = _Window(now, 1)
            else:
                window.failures += 1

    def succeeded(self, account: str) -> None:
        self._counts.pop(("account", account.lower()), None)

    async def login(
        self, request: Request, account: str, authenticate: Callable[[], Awaitable[T | None]]
    ) -> T:
        """Run ``authenticate`` unless throttled; ``None`` from it is a failed login (401)."""
        address = request.client.host if request.client else "unknown"
        self.check(account, address)
        found = await authenticate()
        if found is None:
            self.failed(account, address)
            raise unauthorized("Incorrect username or password.")
        self.succeeded(account)
        return found

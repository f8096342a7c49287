"""Requests and tokens per minute, per key, per end user (``sub``) and per tenant.

Fixed one-minute windows. Admission checks every scope and counts the request in all of
them at once (a refused request counts nowhere); settlement adds the tokens used. Over a
limit is a 429 with ``Retry-After`` and the ``x-ratelimit-*`` headers OpenAI clients read.
The limits are judged here, from the counts; the counts themselves live in
:mod:`.limiters` (in Redis when it is configured, shared by all replicas, else in the
process).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dynaseal.core.errors import APIError
from dynaseal.gateway.errors import REFUSAL_HEADER
from dynaseal.keys import KeyGrant

WINDOW_SECONDS = 60
LIMIT_NAMES = ("key_rpm", "key_tpm", "sub_rpm", "sub_tpm", "tenant_rpm", "tenant_tpm")


@dataclass(frozen=True, slots=True)
class Scope:
    name: str  # "key", "sub" or "tenant"
    id: str
    rpm: int  # 0: unlimited
    tpm: int

    @property
    def limited(self) -> bool:
        return self.rpm > 0 or self.tpm > 0


def scopes_for(grant: KeyGrant, limits: Mapping[str, int]) -> list[Scope]:
    """The limited scopes a request with this key falls in. A child key is limited as its
    root key: children made offline cannot multiply the per-key limits."""
    root = grant.chain[0].event_id
    candidates = [
        Scope("key", f"{grant.tenant_id}:{root}", limits["key_rpm"], limits["key_tpm"]),
        Scope("tenant", grant.tenant_id, limits["tenant_rpm"], limits["tenant_tpm"]),
    ]
    if grant.sub:
        candidates.append(
            Scope("sub", f"{grant.tenant_id}:{grant.sub}", limits["sub_rpm"], limits["sub_tpm"])
        )
    return [s for s in candidates if s.limited]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Counts after admission (or at refusal) of the tightest request and token limits."""

    refused: Scope | None
    refused_on: str | None  # "requests" or "tokens"
    request_limit: int | None
    requests_left: int | None
    token_limit: int | None
    tokens_left: int | None
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        reset = f"{self.reset_seconds}s"
        headers: dict[str, str] = {}
        if self.request_limit is not None:
            headers["x-ratelimit-limit-requests"] = str(self.request_limit)
            headers["x-ratelimit-remaining-requests"] = str(max(self.requests_left or 0, 0))
            headers["x-ratelimit-reset-requests"] = reset
        if self.token_limit is not None:
            headers["x-ratelimit-limit-tokens"] = str(self.token_limit)
            headers["x-ratelimit-remaining-tokens"] = str(max(self.tokens_left or 0, 0))
            headers["x-ratelimit-reset-tokens"] = reset
        return headers

    def error(self) -> APIError:
        assert self.refused is not None
        return APIError(
            429,
            f"Rate limit reached for {self.refused_on} per minute on this {self.refused.name}; "
            f"retry in {self.reset_seconds} s.",
            code="rate_limit_exceeded",
            type=self.refused_on,
            headers={
                "Retry-After": str(self.reset_seconds),
                REFUSAL_HEADER: "rate_limited",
                **self.headers(),
            },
        )


def judge(scopes: Sequence[Scope], counts: Sequence[tuple[int, int]], reset: int) -> Verdict:
    """Apply the limits to the window's counts (requests, tokens) before this request."""
    refused: Scope | None = None
    refused_on: str | None = None
    request_limit: int | None = None
    requests_left: int | None = None
    token_limit: int | None = None
    tokens_left: int | None = None
    for scope, (requests, tokens) in zip(scopes, counts, strict=True):
        if scope.rpm > 0:
            left = scope.rpm - requests
            if refused is None and left <= 0:
                refused, refused_on = scope, "requests"
            if requests_left is None or left < requests_left:
                request_limit, requests_left = scope.rpm, left
        if scope.tpm > 0:
            left = scope.tpm - tokens
            if refused is None and left <= 0:
                refused, refused_on = scope, "tokens"
            if tokens_left is None or left < tokens_left:
                token_limit, tokens_left = scope.tpm, left
    if refused is None and requests_left is not None:
        requests_left -= 1  # this request
    return Verdict(
        refused, refused_on, request_limit, requests_left, token_limit, tokens_left, reset
    )


def window_at(now: float) -> tuple[int, int]:
    """The fixed window ``now`` falls in, and the seconds until it resets."""
    window = int(now // WINDOW_SECONDS)
    return window, max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))

"""The gateway's refusals. Each carries ``x-dynaseal-refusal`` so a device SDK can tell a
spent key (get a new one) from a rate limit (wait)."""

from __future__ import annotations

from dynaseal.core.errors import APIError

REFUSAL_HEADER = "x-dynaseal-refusal"


def invalid_key() -> APIError:
    # Deliberately the same message for every failure: the log says why, the device
    # (or a forger) learns nothing.
    return APIError(
        401,
        "Invalid, expired or revoked dynamic key.",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer", REFUSAL_HEADER: "invalid_key"},
    )


def model_not_allowed(model: str) -> APIError:
    return APIError(
        403,
        f"This key does not allow the model {model!r}.",
        code="model_not_allowed",
        param="model",
        headers={REFUSAL_HEADER: "model_not_allowed"},
    )


def origin_not_allowed(origin: str) -> APIError:
    return APIError(
        403,
        f"This key's tenant does not allow requests from the web origin {origin!r}.",
        code="origin_not_allowed",
        headers={REFUSAL_HEADER: "origin_not_allowed"},
    )


def insufficient_quota(message: str) -> APIError:
    """A budget of the key cannot hold the request. ``x-should-retry: false`` stops the
    OpenAI SDKs from retrying what only a new key can fix."""
    return APIError(
        429,
        message,
        code="insufficient_quota",
        type="insufficient_quota",
        headers={REFUSAL_HEADER: "insufficient_quota", "x-should-retry": "false"},
    )


def model_not_priced(model: str) -> APIError:
    return APIError(
        403,
        f"This key has a max_cost budget, but the gateway has no price for the model "
        f"{model!r}, so it cannot tell what a request would cost. The gateway's operator "
        "(PRICES_FILE / MODEL_PRICES) or the tenant (model_prices) must set one.",
        code="model_not_priced",
        param="model",
        headers={REFUSAL_HEADER: "model_not_priced"},
    )


def upstream_unavailable(message: str = "The upstream model server is unreachable.") -> APIError:
    return APIError(502, message, code="upstream_unavailable")

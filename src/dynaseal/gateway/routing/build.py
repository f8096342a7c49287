"""The router a gateway's settings describe.

``ROUTING_FILE``: its deployments. ``OPENAI_BASE_URL`` (the one-upstream shortcut):
one deployment, ``default``, serving every model under its own name on every endpoint.
Neither: the offline responder, which speaks chat completions (and so, translated, the
Responses API).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from dynaseal.gateway.endpoints.base import ENDPOINT_NAMES
from dynaseal.gateway.relay.offline import OfflineUpstream
from dynaseal.gateway.relay.upstream import HttpUpstream, Upstream
from dynaseal.gateway.routing.config import ANY_MODEL, RouterPolicy, load_routing_file
from dynaseal.gateway.routing.deployment import Deployment
from dynaseal.gateway.routing.router import Router
from dynaseal.gateway.settings import GatewaySettings


def build_router(
    settings: GatewaySettings,
    connections: int,
    measured: Callable[[Upstream], Upstream] = lambda upstream: upstream,
) -> Router:
    """``connections``: the size of each deployment's connection pool; ``measured`` wraps
    each deployment's upstream (metrics, traces)."""
    if settings.routing_file is not None:
        return _from_file(settings, connections, measured)
    if settings.openai_base_url is None:
        offline = Deployment("offline", ANY_MODEL, measured(OfflineUpstream()), frozenset({"chat"}))
        return Router([offline], RouterPolicy(max_attempts=1))
    api_key = settings.openai_api_key
    upstream = HttpUpstream(
        str(settings.openai_base_url),
        api_key.get_secret_value() if api_key else None,
        timeout=settings.upstream_timeout_seconds,
        max_connections=connections,
    )
    default = Deployment("default", ANY_MODEL, measured(upstream), frozenset(ENDPOINT_NAMES))
    return Router([default], RouterPolicy(max_attempts=1))


def _from_file(
    settings: GatewaySettings, connections: int, measured: Callable[[Upstream], Upstream]
) -> Router:
    assert settings.routing_file is not None
    routing = load_routing_file(settings.routing_file)
    policy = routing.router
    deployments = []
    for name, config in routing.named():
        key = os.environ[config.api_key_env] if config.api_key_env else None
        upstream = HttpUpstream(
            str(config.base_url),
            key,
            timeout=config.timeout_seconds or settings.upstream_timeout_seconds,
            max_connections=connections,
        )
        deployments.append(
            Deployment(
                name,
                config.model,
                measured(upstream),
                frozenset(config.endpoints),
                weight=config.weight,
                upstream_model=config.upstream_model,
                cooldown_failures=policy.cooldown_failures,
                cooldown_seconds=policy.cooldown_seconds,
            )
        )
    return Router(deployments, policy)

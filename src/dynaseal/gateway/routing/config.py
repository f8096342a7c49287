"""The routing file: which deployments serve which public model name.

TOML (read with the standard library), path in ``ROUTING_FILE``::

    [router]                      # optional; these are the defaults
    max_attempts = 3              # deployments tried per request, at most
    backoff_seconds = 0.1         # before the 2nd try; doubled before each next one
    cooldown_failures = 3         # consecutive failures that take a deployment out ...
    cooldown_seconds = 30         # ... for this long

    [[deployments]]
    model = "deepseek-chat"       # the public name keys allow ("*": any other model)
    name = "deepseek"             # in the ledger and /readyz (default: model#n)
    base_url = "https://api.deepseek.com/v1"
    api_key_env = "DEEPSEEK_API_KEY"   # the variable holding the key, never the key
    upstream_model = "deepseek-chat"   # the name upstream (default: the public one)
    weight = 3                    # share of the requests, relative to the others
    timeout_seconds = 120         # longest wait for the next byte
    endpoints = ["chat"]          # what it serves (default: all four); a "chat" only
                                  # deployment gets Responses requests translated

Every problem is a :class:`~dynaseal.core.settings.ConfigError` naming ``ROUTING_FILE``
and the entry, so the gateway stops at start-up with one line instead of failing later.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from pathlib import Path

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)

from dynaseal.core.settings import ConfigError
from dynaseal.gateway.endpoints.base import ENDPOINT_NAMES, EndpointName

ANY_MODEL = "*"


class RouterPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: PositiveInt = 3
    backoff_seconds: NonNegativeFloat = 0.1
    cooldown_failures: PositiveInt = 3
    cooldown_seconds: NonNegativeFloat = 30.0


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1, max_length=64)
    base_url: AnyHttpUrl
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    upstream_model: str | None = Field(default=None, min_length=1)
    weight: PositiveFloat = 1.0
    timeout_seconds: PositiveFloat | None = None
    endpoints: list[EndpointName] = Field(
        default_factory=lambda: list(ENDPOINT_NAMES), min_length=1
    )


class RoutingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    router: RouterPolicy = Field(default_factory=RouterPolicy)
    deployments: list[DeploymentConfig] = Field(min_length=1)

    def named(self) -> list[tuple[str, DeploymentConfig]]:
        """Each deployment with its name (``model#n`` when the file gives none)."""
        seen: Counter[str] = Counter()
        named = []
        for deployment in self.deployments:
            seen[deployment.model] += 1
            named.append(
                (deployment.name or f"{deployment.model}#{seen[deployment.model]}", deployment)
            )
        return named


def load_routing_file(path: Path) -> RoutingFile:
    """Read and check the file; a :class:`ConfigError` naming what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ROUTING_FILE: cannot read {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"ROUTING_FILE: {path} is not valid TOML: {exc}") from None
    try:
        routing = RoutingFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            ".".join(str(p) for p in e["loc"]) + ": " + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        ]
        raise ConfigError(f"ROUTING_FILE: {path}: " + "; ".join(problems)) from None
    names = Counter(name for name, _ in routing.named())
    if twice := sorted(n for n, count in names.items() if count > 1):
        raise ConfigError(f"ROUTING_FILE: {path}: deployment names must differ: {twice[0]}")
    for name, deployment in routing.named():
        variable = deployment.api_key_env
        if variable is not None and not os.environ.get(variable):
            raise ConfigError(
                f"ROUTING_FILE: deployment {name} takes its API key from {variable}, "
                "which is not set"
            )
        if deployment.base_url.username or deployment.base_url.password:
            raise ConfigError(
                f"ROUTING_FILE: deployment {name}: put no credentials in base_url; "
                "give the API key by api_key_env"
            )
    return routing

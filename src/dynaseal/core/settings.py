"""Settings read from environment variables, with the original design's names honoured.

Both services read ``SECRET_KEY``, ``ALGORITHM``, ``ACCESS_TOKEN_EXPIRE_MINUTES``,
``REFRESH_TOKEN_EXPIRE_MINUTES`` and ``ADMIN_USER_PASSWORD``. The original's
``MONGODB_URL`` / ``MONGODB_DB`` are recognised and ignored: our storage is SQL,
chosen by ``DATABASE_URL``.
"""

from __future__ import annotations

import logging
from typing import Literal, TypeVar

from pydantic import Field, PositiveInt, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("dynaseal")

#: Used when SECRET_KEY is unset so that a laptop run just works; never in production.
INSECURE_DEV_SECRET = "dynaseal-insecure-development-secret-change-me"


class ConfigError(Exception):
    """A setting is invalid; the message names the environment variable."""


class ServiceSettings(BaseSettings):
    """What the gateway and the backend both need."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    secret_key: SecretStr = SecretStr(INSECURE_DEV_SECRET)
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: PositiveInt = 30
    refresh_token_expire_minutes: PositiveInt = 60 * 24 * 7
    admin_user_password: SecretStr | None = None
    database_url: str = "sqlite+aiosqlite:///./dynaseal.db"
    cors_origins: list[str] = Field(default_factory=list)
    mongodb_url: str | None = None
    mongodb_db: str | None = None


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment plus explicit overrides (CLI options win).

    Raises :class:`ConfigError` naming each invalid variable, never a traceback.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = cls(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(p) for p in error.get("loc", ()) if isinstance(p, str))
            problems.append(f"{name.upper() or 'settings'}: {error.get('msg')}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if settings.mongodb_url:
        log.warning("MONGODB_URL is ignored: Dynaseal stores its data via DATABASE_URL")
    if settings.secret_key.get_secret_value() == INSECURE_DEV_SECRET:
        log.warning("SECRET_KEY is not set: using an insecure development secret")
    return settings


Environment = Literal["development", "production"]

"""Settings read from environment variables, with the original design's names honoured.

Both services read ``SECRET_KEY``, ``ALGORITHM``, ``ACCESS_TOKEN_EXPIRE_MINUTES``,
``REFRESH_TOKEN_EXPIRE_MINUTES`` and ``ADMIN_USER_PASSWORD``. The original's
``MONGODB_URL`` / ``MONGODB_DB`` are recognised and ignored: our storage is SQL,
chosen by ``DATABASE_URL``.
"""

from __future__ import annotations

import logging
from typing import Literal, TypeVar

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, ValidationError
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
    #: Largest request body of the routes that have no limit of their own (logins, JSON);
    #: counted while the body streams in, before any authentication.
    max_body_bytes: PositiveInt = 64 * 1024
    #: Failed logins allowed per account and per client address in the window.
    login_failures_per_account: PositiveInt = 5
    login_failures_per_address: PositiveInt = 30
    login_failure_window_seconds: PositiveFloat = 300.0
    #: ``production`` refuses to start with a default or weak SECRET_KEY / admin password.
    dynaseal_env: Literal["development", "production"] = "development"
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
    if settings.dynaseal_env == "production":
        _refuse_weak_secrets(settings)
    if settings.mongodb_url:
        log.warning("MONGODB_URL is ignored: Dynaseal stores its data via DATABASE_URL")
    if settings.secret_key.get_secret_value() == INSECURE_DEV_SECRET:
        log.warning("SECRET_KEY is not set: using an insecure development secret")
    return settings


_MIN_SECRET_KEY = 32
_MIN_ADMIN_PASSWORD = 12


def _refuse_weak_secrets(settings: ServiceSettings) -> None:
    secret = settings.secret_key.get_secret_value()
    if secret == INSECURE_DEV_SECRET or len(secret) < _MIN_SECRET_KEY:
        raise ConfigError(
            f"SECRET_KEY: production mode needs a random value of at least {_MIN_SECRET_KEY} "
            "characters, e.g. the output of: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'"
        )
    admin = settings.admin_user_password
    if admin is not None and len(admin.get_secret_value()) < _MIN_ADMIN_PASSWORD:
        raise ConfigError(
            f"ADMIN_USER_PASSWORD: production mode needs at least {_MIN_ADMIN_PASSWORD} "
            "characters (or leave it unset once the admin account exists)"
        )

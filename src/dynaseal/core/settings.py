"""Settings read from environment variables, with the original design's names honoured.

Both services read ``SECRET_KEY``, ``ALGORITHM``, ``ACCESS_TOKEN_EXPIRE_MINUTES``,
``REFRESH_TOKEN_EXPIRE_MINUTES`` and ``ADMIN_USER_PASSWORD``. The original's
``MONGODB_URL`` / ``MONGODB_DB`` are recognised and ignored: our storage is SQL,
chosen by ``DATABASE_URL``. Without ``SECRET_KEY`` each service generates a secret at its
first start and keeps it in its database (:mod:`dynaseal.core.server_secret`).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from dynaseal.core.tracing import Exporter, check_installed

log = logging.getLogger("dynaseal")

#: Published defaults of earlier versions: anyone can sign with them, so none is accepted.
_PUBLIC_SECRETS = frozenset({"dynaseal-insecure-development-secret-change-me"})
_MIN_SECRET_KEY = 32
_HOW_TO_MAKE_A_SECRET = (
    f"use a random value of at least {_MIN_SECRET_KEY} characters, e.g. the output of: "
    "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
)


class ConfigError(Exception):
    """A setting is invalid; the message names the environment variable."""


def _list_from_text(value: Any) -> Any:
    """A list variable may be JSON (``["a", "b"]``) or comma-separated (``a,b``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("not a valid JSON list; or give the items comma-separated") from None
    return [item.strip() for item in text.split(",") if item.strip()]


#: A list setting: ``CORS_ORIGINS=https://a.example,https://b.example`` or a JSON list.
TextList = Annotated[list[str], NoDecode, BeforeValidator(_list_from_text)]
#: A list of positive numbers, given the same ways (``1,5,30`` or ``[1, 5, 30]``).
NumberList = Annotated[list[PositiveFloat], NoDecode, BeforeValidator(_list_from_text)]


class ServiceSettings(BaseSettings):
    """What the gateway and the backend both need."""

    # An empty variable is an unset one (``LLM_KEY: ${LLM_KEY:-}`` in a compose file).
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    #: Unset: a random secret generated at the first start and kept in the database.
    secret_key: SecretStr | None = None
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: PositiveInt = 30
    refresh_token_expire_minutes: PositiveInt = 60 * 24 * 7
    admin_user_password: SecretStr | None = None
    database_url: str = "sqlite+aiosqlite:///./dynaseal.db"
    #: Allowed CORS origins, comma-separated or a JSON list; CORS is closed when empty.
    cors_origins: TextList = Field(default_factory=list)
    #: ``text`` lines or one ``json`` object per line (read by dynaseal.core.logs).
    log_format: Literal["text", "json"] = "text"
    #: Largest request body of the routes that have no limit of their own (logins, JSON);
    #: counted while the body streams in, before any authentication.
    max_body_bytes: PositiveInt = 64 * 1024
    #: Failed logins allowed in the window: per account from one client address, per
    #: address over all accounts, and per account over all addresses except those it
    #: logged in from before (looser, so that guessing cannot lock the owner out).
    login_failures_per_account_and_address: PositiveInt = 5
    login_failures_per_address: PositiveInt = 30
    login_failures_per_account: PositiveInt = 50
    login_failure_window_seconds: PositiveFloat = 300.0
    #: How long a web-console login lasts (``/console``); logging out ends it at once.
    console_session_minutes: PositiveInt = 8 * 60
    #: Redis for state the processes and replicas share (on the backend: login failures;
    #: on the gateway also budgets, use counts, rate limits); unset: each process its own.
    redis_url: str | None = None
    #: ``production`` refuses to start without SECRET_KEY, or with a weak one or a weak
    #: admin password.
    dynaseal_env: Literal["development", "production"] = "development"
    #: Bearer token for ``GET /metrics``; unset, only clients on this machine may read it.
    metrics_token: SecretStr | None = None
    #: ``otlp``: a span per stage of each request, sent where the ``OTEL_*`` variables say.
    tracing: Exporter = "off"
    mongodb_url: str | None = None
    mongodb_db: str | None = None

    @field_validator("secret_key")
    @classmethod
    def _not_published(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty value (``SECRET_KEY=``) is unset: nothing ever signs with an empty key."""
        if value is None or not value.get_secret_value():
            return None
        if value.get_secret_value() in _PUBLIC_SECRETS:
            raise ValueError("this value is published; " + _HOW_TO_MAKE_A_SECRET)
        return value

    @field_validator("tracing")
    @classmethod
    def _tracing_installed(cls, value: Exporter) -> Exporter:
        check_installed(value)
        return value


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings from the environment plus explicit overrides (CLI options win).

    Raises :class:`ConfigError` naming each invalid variable, never a traceback.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = cls(**given)  # type: ignore[arg-type]
    except SettingsError as exc:  # a value the environment source could not even parse
        raise ConfigError(f"invalid configuration: {exc}") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(p) for p in error.get("loc", ()) if isinstance(p, str))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            # A check across settings names its variables in its own message.
            problems.append(f"{name.upper()}: {message}" if name else message)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if settings.dynaseal_env == "production":
        _refuse_weak_secrets(settings)
    if settings.mongodb_url:
        log.warning("MONGODB_URL is ignored: Dynaseal stores its data via DATABASE_URL")
    return settings


_MIN_ADMIN_PASSWORD = 12


def _refuse_weak_secrets(settings: ServiceSettings) -> None:
    if settings.secret_key is None:
        # The generated secret would live in the database, next to the tenant secrets
        # it seals: a dump of the database alone would open them.
        raise ConfigError(
            "SECRET_KEY: production mode needs it set, outside the database; "
            + _HOW_TO_MAKE_A_SECRET
        )
    if len(settings.secret_key.get_secret_value()) < _MIN_SECRET_KEY:
        raise ConfigError("SECRET_KEY: too short for production mode; " + _HOW_TO_MAKE_A_SECRET)
    admin = settings.admin_user_password
    if admin is not None and len(admin.get_secret_value()) < _MIN_ADMIN_PASSWORD:
        raise ConfigError(
            f"ADMIN_USER_PASSWORD: production mode needs at least {_MIN_ADMIN_PASSWORD} "
            "characters (or leave it unset once the admin account exists)"
        )

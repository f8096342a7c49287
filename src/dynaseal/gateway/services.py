"""Everything a gateway process holds for its lifetime, built once at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.session_tokens import SessionTokens
from dynaseal.core.settings import ConfigError
from dynaseal.gateway import settlement, shared_state
from dynaseal.gateway.admission import Admission, Gatekeeper
from dynaseal.gateway.budget import BudgetStore, SqlBudget
from dynaseal.gateway.callback_url import CallbackPolicy
from dynaseal.gateway.delivery import DeliveryWorker
from dynaseal.gateway.exclusive import ExclusiveUse
from dynaseal.gateway.key_ring import KeyRing
from dynaseal.gateway.ledger_writer import LedgerWriter
from dynaseal.gateway.memory_budget import MemoryBudget
from dynaseal.gateway.offline import OfflineUpstream
from dynaseal.gateway.rate_limits import LocalRateLimiter, RateLimiter, RedisRateLimiter
from dynaseal.gateway.redis_budget import RedisBudget
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.gateway.transcript import Transcript
from dynaseal.gateway.upstream import HttpUpstream, Upstream
from dynaseal.storage import Database

log = logging.getLogger("dynaseal.gateway")

SESSION_AUDIENCE = "dynaseal-gateway-session"


def _upstream(settings: GatewaySettings) -> Upstream:
    if settings.openai_base_url is None:
        return OfflineUpstream()
    api_key = settings.openai_api_key
    return HttpUpstream(
        str(settings.openai_base_url),
        api_key.get_secret_value() if api_key else None,
        timeout=settings.upstream_timeout_seconds,
        max_connections=settings.upstream_max_connections,
    )


def _stores(
    settings: GatewaySettings, db: Database, redis: Redis | None
) -> tuple[BudgetStore, RateLimiter, ExclusiveUse | None]:
    """Redis when configured; else memory for the sole process on a SQLite file; else rows."""
    if redis is not None:
        return RedisBudget(redis, db), RedisRateLimiter(redis), None
    choice = settings.budget_store
    if choice == "auto":
        choice = "memory" if db.is_sqlite else "database"
    if choice == "memory":
        if not db.is_sqlite:
            raise ConfigError(
                "BUDGET_STORE: memory needs a SQLite database (one gateway process); "
                "with PostgreSQL use database, or set REDIS_URL"
            )
        return MemoryBudget(db), LocalRateLimiter(), ExclusiveUse(db.url)
    return SqlBudget(db), LocalRateLimiter(), None


@dataclass(slots=True)
class GatewayServices:
    settings: GatewaySettings
    db: Database
    redis: Redis | None
    #: SECRET_KEY, or the one generated and kept in the database (loaded at start-up).
    server_secret: ServerSecret
    box: SecretsBox
    key_ring: KeyRing
    gatekeeper: Gatekeeper
    upstream: Upstream
    delivery: DeliveryWorker
    sessions: SessionTokens
    login_throttle: LoginThrottle
    callback_policy: CallbackPolicy
    ledger: LedgerWriter
    exclusive: ExclusiveUse | None

    @classmethod
    def build(cls, settings: GatewaySettings, *, allow_loopback: bool = False) -> GatewayServices:
        """``allow_loopback``: the demo's callback URL is on 127.0.0.1."""
        db = Database(settings.database_url)
        server_secret = ServerSecret(settings.secret_key)
        box = SecretsBox(server_secret)
        key_ring = KeyRing(db, box, settings.key_cache_seconds)
        redis = shared_state.connect(settings.redis_url) if settings.redis_url else None
        budget, limiter, exclusive = _stores(settings, db, redis)
        delivery = DeliveryWorker(
            db,
            box,
            policy := CallbackPolicy(
                allow_loopback=allow_loopback or settings.allow_loopback_callbacks,
                allow_private=settings.allow_private_callbacks,
            ),
            timeout=settings.callback_timeout_seconds,
            retry_schedule=settings.callback_retry_schedule_seconds,
            gather_seconds=settings.callback_gather_seconds,
        )
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            server_secret=server_secret,
            box=box,
            key_ring=key_ring,
            gatekeeper=Gatekeeper(settings, key_ring, budget, limiter),
            upstream=_upstream(settings),
            delivery=delivery,
            sessions=SessionTokens.for_service(settings, SESSION_AUDIENCE, server_secret),
            login_throttle=LoginThrottle.for_service(settings, "gateway", redis),
            callback_policy=policy,
            ledger=LedgerWriter(
                db,
                budget,
                lambda queued: queued and delivery.notify(),
                gather_seconds=0.0 if budget.books_reservations else settings.ledger_gather_seconds,
            ),
            exclusive=exclusive,
        )

    def start(self) -> None:
        """Claim the database if budgets live in memory, then start the background work."""
        if self.exclusive is not None:
            self.exclusive.acquire()
        self.ledger.start()
        self.delivery.start()

    async def settle(self, admission: Admission, transcript: Transcript, status: str) -> None:
        """A request ended: free its reservation, count its tokens, record it durably."""
        settled = settlement.finish(admission, transcript, status)  # type: ignore[arg-type]
        budget = self.gatekeeper.budget
        await budget.release(admission.grant, admission.reservation, settled.used)
        if admission.rate_scopes:
            try:
                await self.gatekeeper.limiter.add_tokens(admission.rate_scopes, settled.used)
            except Exception as exc:  # the ledger has the usage; only the limit is lenient
                log.warning("could not count %d tokens against rate limits: %s", settled.used, exc)
        written = self.ledger.submit(settled)
        if budget.books_reservations:
            await written  # the next request with this key must see the booking

    async def aclose(self) -> None:
        await self.ledger.close(self.settings.shutdown_timeout_seconds)
        await self.delivery.stop()
        await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.exclusive is not None:
            self.exclusive.release()
        await self.db.dispose()

"""Everything a gateway process holds for its lifetime, built once at start-up: the
wiring of the parts, and their start and stop. No request logic lives here."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.server_secret import ServerSecret
from dynaseal.core.session_tokens import SessionTokens
from dynaseal.core.settings import ConfigError
from dynaseal.gateway import shared_state
from dynaseal.gateway.admission.concurrency import Concurrency, default_limits
from dynaseal.gateway.admission.gatekeeper import Gatekeeper
from dynaseal.gateway.admission.key_ring import KeyRing
from dynaseal.gateway.admission.limiters import LocalRateLimiter, RateLimiter, RedisRateLimiter
from dynaseal.gateway.admission.proofs import ProofChecker
from dynaseal.gateway.budget.database import SqlBudget
from dynaseal.gateway.budget.memory import MemoryBudget
from dynaseal.gateway.budget.redis import RedisBudget
from dynaseal.gateway.budget.store import BudgetStore
from dynaseal.gateway.callbacks.delivery import NO_WATCHER, DeliveryWorker, delivers_inline
from dynaseal.gateway.callbacks.url_policy import CallbackPolicy
from dynaseal.gateway.exclusive import ExclusiveUse
from dynaseal.gateway.metrics import GatewayMetrics, MeasuredUpstream
from dynaseal.gateway.pricing import Price, load_prices
from dynaseal.gateway.refusals import RefusalCounter
from dynaseal.gateway.relay import pool
from dynaseal.gateway.relay.proxy import RelaySettings
from dynaseal.gateway.routing.build import build_router
from dynaseal.gateway.routing.router import Router
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.gateway.settlement.leases import ProcessLease
from dynaseal.gateway.settlement.recovery import Recovery
from dynaseal.gateway.settlement.settler import Settler
from dynaseal.gateway.settlement.writer import LedgerWriter
from dynaseal.storage import Database

SESSION_AUDIENCE = "dynaseal-gateway-session"


def _concurrency(settings: GatewaySettings) -> Concurrency:
    """The upstream pool, sized from the open-files limit unless configured."""
    size = settings.upstream_max_connections or pool.automatic_size(pool.raise_open_files_limit())
    return Concurrency(
        pool.UpstreamPool(size),
        default_limits(size, settings.concurrency_limits()),
        wait_seconds=settings.upstream_timeout_seconds,
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
    budget: BudgetStore
    gatekeeper: Gatekeeper
    concurrency: Concurrency
    settler: Settler
    upstream: Router
    relay: RelaySettings
    delivery: DeliveryWorker
    sessions: SessionTokens
    login_throttle: LoginThrottle
    callback_policy: CallbackPolicy
    ledger: LedgerWriter
    #: This process's lease, and the settling of what dead processes left in flight.
    recovery: Recovery
    exclusive: ExclusiveUse | None
    prices: dict[str, Price]
    refusals: RefusalCounter
    metrics: GatewayMetrics

    @classmethod
    def build(cls, settings: GatewaySettings, *, allow_loopback: bool = False) -> GatewayServices:
        """``allow_loopback``: the demo's callback URL is on 127.0.0.1."""
        prices = load_prices(settings.prices_file, settings.model_prices)
        db = Database(settings.database_url)
        metrics = GatewayMetrics()
        metrics.watch_outbox(db)
        server_secret = ServerSecret(settings.secret_key)
        box = SecretsBox(server_secret)
        key_ring = KeyRing(db, box, settings.key_cache_seconds)
        redis = shared_state.connect(settings.redis_url) if settings.redis_url else None
        budget, limiter, exclusive = _stores(settings, db, redis)
        concurrency = _concurrency(settings)
        policy = CallbackPolicy(
            allow_loopback=allow_loopback or settings.allow_loopback_callbacks,
            allow_private=settings.allow_private_callbacks,
        )
        delivery = DeliveryWorker.for_settings(settings, db, box, policy, metrics)
        watcher = delivery if delivers_inline(settings) else NO_WATCHER
        ledger = LedgerWriter(
            db,
            budget,
            watcher,
            metrics,
            gather_seconds=settings.ledger_gather_seconds,
        )
        lease = ProcessLease(db, settings.process_lease_seconds)
        return cls(
            settings=settings,
            db=db,
            redis=redis,
            server_secret=server_secret,
            box=box,
            key_ring=key_ring,
            budget=budget,
            gatekeeper=Gatekeeper(
                settings,
                key_ring,
                budget,
                limiter,
                concurrency,
                metrics,
                prices,
                proofs=ProofChecker.shared(redis),
            ),
            concurrency=concurrency,
            settler=Settler(budget, limiter, ledger, metrics, lease.id),
            upstream=build_router(
                settings,
                concurrency.pool.capacity,
                lambda upstream: MeasuredUpstream(upstream, metrics),
            ),
            relay=RelaySettings(
                content_limit=settings.callback_content_max_chars,
                write_timeout=settings.client_write_timeout_seconds,
            ),
            delivery=delivery,
            sessions=SessionTokens.for_service(settings, SESSION_AUDIENCE, server_secret),
            login_throttle=LoginThrottle.for_service(settings, "gateway", redis),
            callback_policy=policy,
            ledger=ledger,
            recovery=Recovery(
                db, budget, lease, watcher, metrics, sole_process=exclusive is not None
            ),
            exclusive=exclusive,
            prices=prices,
            refusals=RefusalCounter(db, settings.refusal_flush_seconds, metrics),
            metrics=metrics,
        )

    async def start(self) -> None:
        """Claim the database if budgets live in memory, start the background work, take
        this process's lease and settle what dead processes left in flight (before the
        first request, so budgets in memory are seeded with those bookings)."""
        if self.exclusive is not None:
            self.exclusive.acquire()
        self.ledger.start()
        if delivers_inline(self.settings):
            self.delivery.start()
        self.refusals.start()
        await self.recovery.start()

    async def aclose(self) -> None:
        await self.ledger.close(self.settings.shutdown_timeout_seconds)
        await self.recovery.stop()
        await self.delivery.stop()
        await self.refusals.aclose()
        await self.upstream.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.exclusive is not None:
            self.exclusive.release()
        await self.db.dispose()

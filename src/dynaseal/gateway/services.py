"""Everything a gateway process holds for its lifetime, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from dynaseal.core.login_throttle import LoginThrottle
from dynaseal.core.session_tokens import SessionTokens
from dynaseal.gateway import settlement
from dynaseal.gateway.admission import Admission
from dynaseal.gateway.callback_url import CallbackPolicy
from dynaseal.gateway.delivery import DeliveryWorker
from dynaseal.gateway.key_ring import KeyRing
from dynaseal.gateway.offline import OfflineUpstream
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.gateway.transcript import Transcript
from dynaseal.gateway.upstream import HttpUpstream, Upstream
from dynaseal.storage import Database

SESSION_AUDIENCE = "dynaseal-gateway-session"


@dataclass(slots=True)
class GatewayServices:
    settings: GatewaySettings
    db: Database
    box: SecretsBox
    key_ring: KeyRing
    upstream: Upstream
    delivery: DeliveryWorker
    sessions: SessionTokens
    login_throttle: LoginThrottle
    callback_policy: CallbackPolicy

    @classmethod
    def build(cls, settings: GatewaySettings, *, allow_loopback: bool = False) -> GatewayServices:
        """``allow_loopback``: the demo's callback URL is on 127.0.0.1."""
        db = Database(settings.database_url)
        secret = settings.secret_key.get_secret_value()
        box = SecretsBox(secret)
        upstream: Upstream
        if settings.openai_base_url is None:
            upstream = OfflineUpstream()
        else:
            api_key = settings.openai_api_key
            upstream = HttpUpstream(
                str(settings.openai_base_url),
                api_key.get_secret_value() if api_key else None,
                timeout=settings.upstream_timeout_seconds,
                max_connections=settings.upstream_max_connections,
            )
        policy = CallbackPolicy(
            allow_loopback=allow_loopback or settings.allow_loopback_callbacks,
            allow_private=settings.allow_private_callbacks,
        )
        return cls(
            settings=settings,
            db=db,
            box=box,
            key_ring=KeyRing(db, box, settings.key_cache_seconds),
            upstream=upstream,
            delivery=DeliveryWorker(
                db,
                box,
                policy,
                timeout=settings.callback_timeout_seconds,
                retry_schedule=settings.callback_retry_schedule_seconds,
            ),
            sessions=SessionTokens(
                secret=secret,
                algorithm=settings.algorithm,
                audience=SESSION_AUDIENCE,
                access_ttl_seconds=settings.access_token_expire_minutes * 60,
                refresh_ttl_seconds=settings.refresh_token_expire_minutes * 60,
            ),
            login_throttle=LoginThrottle(
                per_account=settings.login_failures_per_account,
                per_address=settings.login_failures_per_address,
                window_seconds=settings.login_failure_window_seconds,
            ),
            callback_policy=policy,
        )

    async def settle(self, admission: Admission, transcript: Transcript, status: str) -> None:
        """Book a finished request and wake the callback sender."""
        queued = await settlement.settle(self.db, admission, transcript, status)  # type: ignore[arg-type]
        if queued:
            self.delivery.notify()

    async def aclose(self) -> None:
        await self.delivery.stop()
        await self.upstream.aclose()
        await self.db.dispose()

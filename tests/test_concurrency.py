"""Issue 12.5 (and 13's pool): one key, one end user or one tenant cannot take every
upstream connection. Requests in flight are limited per key, per ``sub`` and per tenant
(429 with ``Retry-After``), and a tenant waiting for the pool gets the next free
connection before a tenant that already holds many — it waits, it does not fail."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from dynaseal.gateway.relay.pool import PoolTimeout, UpstreamPool, automatic_size
from support.callbacks import CallbackSink
from support.chat import MESSAGES, chat
from support.gateways import demo_gateway
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, TenantHandle, create_tenant, mint
from support.upstream import FakeUpstream

POOL = 16  # default limits then: 4 per key, 4 per end user, 12 per tenant


@pytest.fixture(scope="module")
def small_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    with demo_gateway(
        tmp_path_factory.mktemp("pool"),
        upstream,
        callback_url=sink.url,
        upstream_max_connections=POOL,
    ) as server:
        yield server


def slow_streams(upstream: FakeUpstream) -> None:
    upstream.script.words = 20
    upstream.script.chunk_delay = 0.1  # two seconds per stream


async def stream(client: httpx.AsyncClient, key: str) -> httpx.Response:
    # A cap of its own: without one a request reserves the key's whole budget.
    body = {"model": DEMO_MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 50}
    async with client.stream(
        "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as response:
        await response.aread()
        return response


async def until(condition, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def other_tenant_request(gateway: ServerThread) -> httpx.Response:
    return chat(gateway, mint())  # the demo tenant


async def test_260_slow_streams_from_one_key_do_not_starve_another_tenant(
    small_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    slow_streams(upstream)
    attacker = create_tenant(small_gateway.url, with_api_key=True)
    key = attacker.key(max_tokens=10**9)
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(base_url=small_gateway.url, timeout=60, limits=limits) as client:
        flood = asyncio.gather(*(stream(client, key) for _ in range(260)))
        await until(lambda: upstream.count >= 4)
        other = await asyncio.to_thread(other_tenant_request, small_gateway)
        assert other.status_code == 200, other.text
        responses = await flood
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 4 and statuses.count(429) == 256
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["x-dynaseal-refusal"] == "rate_limited"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert "key" in refused.json()["error"]["message"]


def set_limits(tenant: TenantHandle, **limits: int) -> None:
    reply = httpx.patch(
        tenant.base_url + "/v1/user/me", headers=tenant.auth, json={"rate_limits": limits}
    )
    assert reply.status_code == 200, reply.text


async def test_a_tenant_waiting_for_the_pool_goes_before_one_holding_it(
    small_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    """A tenant with no limits of its own fills the pool and queues 24 more streams (two
    more rounds of two seconds); the other tenant's request waits for the next free
    connection, not for the end of that queue, and does not fail."""
    slow_streams(upstream)
    greedy = create_tenant(small_gateway.url, with_api_key=True)
    set_limits(greedy, key_concurrency=0, tenant_concurrency=0)
    key = greedy.key(max_tokens=10**9)
    ended: list[int] = []

    async def counted(client: httpx.AsyncClient) -> httpx.Response:
        response = await stream(client, key)
        ended.append(response.status_code)
        return response

    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=small_gateway.url, timeout=60, limits=limits) as client:
        flood = asyncio.gather(*(counted(client) for _ in range(40)))
        await until(lambda: upstream.count >= POOL)
        other = await asyncio.to_thread(other_tenant_request, small_gateway)
        ended_before_other = len(ended)
        responses = await flood
    assert other.status_code == 200, other.text
    assert ended_before_other <= POOL  # served in the first round, not after the queue
    assert [r.status_code for r in responses] == [200] * 40  # queued, none failed


async def test_a_tenant_sets_its_own_key_limit_and_slots_are_given_back(
    small_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    slow_streams(upstream)
    upstream.script.words = 5
    tenant = create_tenant(small_gateway.url, with_api_key=True)
    set_limits(tenant, key_concurrency=2)
    key = tenant.key(max_tokens=10**6)
    async with httpx.AsyncClient(base_url=small_gateway.url, timeout=60) as client:
        first = await asyncio.gather(*(stream(client, key) for _ in range(3)))
        assert sorted(r.status_code for r in first) == [200, 200, 429]
        again = await asyncio.gather(*(stream(client, key) for _ in range(2)))
        assert [r.status_code for r in again] == [200, 200]


async def test_the_end_users_limit_spans_their_keys(
    small_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    slow_streams(upstream)
    tenant = create_tenant(small_gateway.url, with_api_key=True)
    keys = [tenant.key(max_tokens=10**6, sub="user-1") for _ in range(6)]  # 4 per sub
    async with httpx.AsyncClient(base_url=small_gateway.url, timeout=60) as client:
        responses = await asyncio.gather(*(stream(client, k) for k in keys))
    assert sorted(r.status_code for r in responses) == [200] * 4 + [429] * 2


# ------------------------------------------------------------------ the pool itself


async def test_a_freed_connection_goes_to_the_tenant_holding_the_fewest() -> None:
    pool = UpstreamPool(2)
    await pool.acquire("a", 1)
    await pool.acquire("a", 1)
    served: list[str] = []

    async def wait(tenant: str) -> None:
        await pool.acquire(tenant, 5)
        served.append(tenant)

    waiters = [asyncio.create_task(wait("a")) for _ in range(3)]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(wait("b")))
    await asyncio.sleep(0)
    pool.release("a")
    await asyncio.sleep(0)
    assert served == ["b"]
    for _ in range(3):
        pool.release(served[-1])
        await asyncio.sleep(0)
    assert served == ["b", "a", "a", "a"]
    await asyncio.gather(*waiters)
    assert pool.in_use == 2


async def test_a_wait_that_ends_gives_its_place_back() -> None:
    pool = UpstreamPool(1)
    await pool.acquire("a", 1)
    with pytest.raises(PoolTimeout):
        await pool.acquire("b", 0.05)
    cancelled = asyncio.create_task(pool.acquire("c", 5))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    pool.release("a")
    assert pool.in_use == 0
    await pool.acquire("d", 0.01)  # nobody is left waiting: straight in


def test_the_pool_is_sized_from_the_open_files_limit() -> None:
    assert automatic_size(1024) == (1024 - 256) // 2
    assert automatic_size(20_000) == 4096  # capped: memory, not descriptors, runs out first
    assert automatic_size(100) == 16


async def test_concurrent_requests_with_one_key_survive_a_key_reload() -> None:
    """Found by 1,000 streams over 64 keys: two requests that both found the cached grant
    stale (the tenant's keys reloaded) both dropped it, and the second answered 500."""
    from dynaseal.core.original_demo import DEMO_TENANT_API_KEY
    from dynaseal.gateway.admission.gatekeeper import Gatekeeper
    from dynaseal.gateway.admission.key_ring import TenantKeys, _CachedKey
    from dynaseal.gateway.settings import GatewaySettings
    from dynaseal.keys import VerificationKey

    class ReloadingRing:
        """Hands out a fresh copy of the keys on every call, as after each cache expiry."""

        async def keys_of(self, tenant_id: str) -> TenantKeys:
            await asyncio.sleep(0)
            key = VerificationKey("demo-key", "HS256", DEMO_TENANT_API_KEY)
            return TenantKeys((_CachedKey(key, None),), None)

    gatekeeper = Gatekeeper(GatewaySettings(), ReloadingRing(), None, None, None, None)
    header = f"Bearer {mint(kid='demo-key')}"
    await gatekeeper.verify(header)
    results = await asyncio.gather(*(gatekeeper.verify(header) for _ in range(10)))
    assert len(results) == 10

"""The only way the gateway sends HTTP to a URL a tenant chose: the host is resolved
once, every address is checked against the callback policy, and the connection goes to
exactly the addresses that were checked.

Checking a name and then letting the HTTP client resolve it again is two lookups: a
name with TTL 0 answers a public address to the first and an internal one to the second,
and two IDNA encodings of one host are two names. Here the connector's resolver *is*
the check (:func:`.url_policy.resolve_checked`), so there is no second lookup to win. An
IP-address host never reaches a resolver and is checked before the request. The Host
header, TLS SNI and the certificate check keep the name; the environment's proxies are
not used and redirects are not followed. A kept-alive connection is reused only for its
own host and port, and it was made to checked addresses.

Anything that sends to a tenant's URL (the delivery loop, and whatever comes after it)
goes through :class:`PinnedSession`.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from dynaseal.gateway.callbacks.url_policy import (
    CallbackPolicy,
    Lookup,
    checked_target,
    resolve_checked,
    system_lookup,
)

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class _CheckingResolver(AbstractResolver):
    """Resolves each host once per connection and returns only what passed the policy;
    raises :class:`.url_policy.HostRefused` instead of returning anything else."""

    def __init__(self, policy: CallbackPolicy, lookup: Lookup) -> None:
        self._policy = policy
        self._lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(
            host, port, self._policy, family=family, lookup=self._lookup
        )
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=socket.IPPROTO_TCP,
                flags=_NUMERIC,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class PinnedSession:
    """An aiohttp session that only ever connects to addresses the policy allows.

    Refusals raise :class:`.url_policy.CallbackURLRefused` (its ``InvalidCallbackURL``,
    ``AddressRefused`` or ``HostRefused``); other failures are aiohttp's own."""

    def __init__(
        self,
        policy: CallbackPolicy,
        *,
        lookup: Lookup = system_lookup,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: the certificate authorities to trust, if not the system's."""
        self._policy = policy
        self._lookup = lookup
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None  # made in the running loop

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_CheckingResolver(self._policy, self._lookup),
                # Each new connection resolves and checks afresh: no cache to reason about.
                use_dns_cache=False,
                ssl=self._tls if self._tls is not None else True,
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    @asynccontextmanager
    async def post(
        self, url: str, *, data: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        target = checked_target(url, self._policy)
        async with self._client().post(
            target.url, data=data, headers=headers, allow_redirects=False
        ) as response:
            yield response

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

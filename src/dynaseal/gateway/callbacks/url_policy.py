"""Where a tenant may ask the gateway to send callbacks.

Only http(s), and not into the gateway's own network: loopback, private, link-local and
other special addresses are refused unless the operator allows them (``dynaseal demo``
and ``--demo-data`` allow loopback, since the original demo's callback URL is on
127.0.0.1). Host names are resolved and every address must pass, so a name cannot smuggle
an internal target in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackURLRefused(ValueError):
    """The URL is not an acceptable callback target; the message says why."""


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    def permits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address.is_loopback:
            return self.allow_loopback or self.allow_private
        if address.is_private or address.is_link_local:
            return self.allow_private
        return address.is_global and not address.is_multicast


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CallbackURLRefused(f"the host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_callback_url(url: str, policy: CallbackPolicy) -> str:
    """Return the URL if the policy allows every address it resolves to, else raise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackURLRefused("callback_url must be an http(s) URL")
    if parts.username or parts.password:
        raise CallbackURLRefused("callback_url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackURLRefused("callback_url has an invalid port") from None
    for address in await _addresses(parts.hostname, port):
        if not policy.permits(address):
            setting = (
                "ALLOW_LOOPBACK_CALLBACKS" if address.is_loopback else "ALLOW_PRIVATE_CALLBACKS"
            )
            raise CallbackURLRefused(
                f"callback_url resolves to {address}, a non-public address this gateway "
                f"does not call unless its operator sets {setting}=true"
            )
    return url

"""Which gateways the device sends its keys to (issue 12, finding 8).

The backend names the gateway in every key response (``base_url``). Followed blindly,
a compromised backend, or anyone who can alter its answers, could point the device at a
host of their choosing, which then receives every dynamic key, DPoP proof and prompt.
The rule:

* a gateway URL must be ``https``, except on loopback (``localhost``, 127/8, ``::1``),
  carry no credentials, query or fragment;
* with ``gateway_origins`` configured, its origin must be one of them;
* without, the first key's origin is trusted (trust on first use) and every later key
  must name the same origin - a different path on it is followed.

Set ``gateway_origins`` in production so that not even the first answer is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from dynaseal.client.errors import DeviceClientError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761 section 6.3
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, default port left out; ``ValueError``
    for anything else, and for URLs that are plain http outside loopback."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an http(s) URL")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ValueError("credentials, query or fragment in the URL")
    host = parts.hostname
    if scheme == "http" and not is_loopback(host):
        raise ValueError("plain http outside loopback")
    port = parts.port
    shown = f"[{host}]" if ":" in host else host
    return (
        f"{scheme}://{shown}"
        if port in (None, _DEFAULT_PORTS[scheme])
        else f"{scheme}://{shown}:{port}"
    )


class GatewayOrigins:
    """The allowed gateway origins of one device client."""

    def __init__(self, allowed: Iterable[str] | None = None) -> None:
        self._allowed = frozenset(origin_of(url) for url in allowed) if allowed else None
        self._pinned: str | None = None

    def check(self, base_url: str) -> None:
        """Accept the gateway a key names, or raise :class:`DeviceClientError`."""
        try:
            origin = origin_of(base_url)
        except ValueError as exc:
            raise DeviceClientError(
                None, f"the backend named an unacceptable gateway URL ({exc})"
            ) from None
        allowed = self._allowed or ({self._pinned} if self._pinned else None)
        if allowed is not None and origin not in allowed:
            raise DeviceClientError(
                None,
                f"the backend named gateway {origin}, which is not among the allowed "
                f"origins {sorted(allowed)} (set gateway_origins to allow it)",
            )
        if self._allowed is None:
            self._pinned = origin

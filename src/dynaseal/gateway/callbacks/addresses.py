"""Which IP addresses are public, by the IANA IPv4 and IPv6 Special-Purpose Address
Registries (RFC 6890 and its updates), for deciding where a callback may go.

Every range in the registries is non-public, including the few they mark globally
reachable (anycast services such as PCP, TURN, AS112 and AMT relays are never a tenant's
backend). An IPv6 address outside global unicast (``2000::/3``) is never public either.

IPv6 forms that embed an IPv4 address:

* IPv4-mapped (``::ffff:0:0/96``) is that IPv4 address to the socket layer, and the
  NAT64 well-known prefix (``64:ff9b::/96``) is translated to it: both are judged as
  the IPv4 address they carry.
* IPv4-compatible (``::/96``), IPv4-translated (``::ffff:0:0:0/96``), local-use NAT64
  (``64:ff9b:1::/48``), 6to4 (``2002::/16``) and Teredo (``2001::/32``) are deprecated
  or local: never public, whatever they carry. The address they carry is named in the
  reason, for the operator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

IPAddress = IPv4Address | IPv6Address


class Scope(enum.Enum):
    """Where an address leads, as far as the operator's switches are concerned."""

    PUBLIC = "public"
    LOOPBACK = "loopback"  # allowed by ALLOW_LOOPBACK_CALLBACKS (or ALLOW_PRIVATE_...)
    PRIVATE = "private"  # allowed by ALLOW_PRIVATE_CALLBACKS
    RESERVED = "reserved"  # never a callback target


@dataclass(frozen=True, slots=True)
class Verdict:
    scope: Scope
    reason: str  # for the operator's log: which range, and what it carries


@dataclass(frozen=True, slots=True)
class _Range:
    network: IPv4Network | IPv6Network
    name: str
    scope: Scope


def _ranges(scope: Scope, *entries: tuple[str, str]) -> list[_Range]:
    return [_Range(ip_network(cidr), name, scope) for cidr, name in entries]


_LOOPBACK = _ranges(
    Scope.LOOPBACK,
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("::1/128", "loopback (RFC 4291)"),
)
_PRIVATE = _ranges(
    Scope.PRIVATE,
    ("10.0.0.0/8", "private-use (RFC 1918)"),
    ("172.16.0.0/12", "private-use (RFC 1918)"),
    ("192.168.0.0/16", "private-use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598)"),
    ("fc00::/7", "unique-local (RFC 4193)"),
)
_RESERVED = _ranges(
    Scope.RESERVED,
    # IPv4 Special-Purpose Address Registry
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("169.254.0.0/16", "link-local (RFC 3927; cloud metadata services)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.0.0.0/29", "IPv4 service continuity prefix (RFC 7335)"),
    ("192.0.0.8/32", "IPv4 dummy address (RFC 7600)"),
    ("192.0.0.9/32", "Port Control Protocol anycast (RFC 7723)"),
    ("192.0.0.10/32", "TURN anycast (RFC 8155)"),
    ("192.0.0.170/31", "NAT64/DNS64 discovery (RFC 7050)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
    ("192.52.193.0/24", "AMT (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.175.48.0/24", "direct delegation AS112 service (RFC 7534)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919)"),
    # IPv6 Special-Purpose Address Registry, and the deprecated ranges it no longer lists
    ("::/128", "unspecified (RFC 4291)"),
    ("::/96", "IPv4-compatible, deprecated (RFC 4291)"),
    ("::ffff:0:0:0/96", "IPv4-translated (RFC 2765)"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "discard-only (RFC 6666)"),
    ("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001::/32", "Teredo (RFC 4380)"),
    ("2001:1::1/128", "Port Control Protocol anycast (RFC 7723)"),
    ("2001:1::2/128", "TURN anycast (RFC 8155)"),
    ("2001:1::3/128", "DNS-SD service registration protocol anycast (RFC 9665)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:3::/32", "AMT (RFC 7450)"),
    ("2001:4:112::/48", "AS112-v6 (RFC 7535)"),
    ("2001:10::/28", "deprecated ORCHID (RFC 4843)"),
    ("2001:20::/28", "ORCHIDv2 (RFC 7343)"),
    ("2001:30::/28", "drone remote ID entity tags (RFC 9374)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056, deprecated by RFC 7526)"),
    ("2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "segment routing (SRv6) SIDs (RFC 9602)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)
# Most specific first, so the reason names the narrowest range.
_SPECIAL = sorted(_LOOPBACK + _PRIVATE + _RESERVED, key=lambda r: -r.network.prefixlen)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")


def _carried(address: IPv6Address) -> str:
    """The IPv4 address(es) a transition form carries, for the reason; '' if none."""
    if address.sixtofour is not None:
        return f" carrying {address.sixtofour}"
    if address.teredo is not None:
        server, client = address.teredo
        return f" carrying server {server} and client {client}"
    if int(address) >> 32 in (0, 0xFFFF0000) and int(address) > 1:  # compatible, translated
        return f" carrying {IPv4Address(int(address) & 0xFFFFFFFF)}"
    return ""


def classify(address: IPAddress) -> Verdict:
    """The scope of ``address`` and why."""
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = classify(embedded)
            return Verdict(inner.scope, f"{address} carries {embedded}: {inner.reason}")
    for special in _SPECIAL:
        if address in special.network:
            carried = _carried(address) if isinstance(address, IPv6Address) else ""
            return Verdict(special.scope, f"{address} is {special.name}{carried}")
    if isinstance(address, IPv6Address) and address not in _GLOBAL_UNICAST:
        return Verdict(Scope.RESERVED, f"{address} is outside global unicast (2000::/3)")
    return Verdict(Scope.PUBLIC, f"{address} is public")

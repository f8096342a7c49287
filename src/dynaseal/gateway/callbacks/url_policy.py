"""Where a tenant may ask the gateway to send callbacks, and the one way a callback
host is spelled and resolved.

Only http(s), and not into the gateway's own network: loopback, private and every other
special-purpose address (:mod:`.addresses`) is refused unless the operator allows it
(``dynaseal demo`` and ``--demo-data`` allow loopback, since the original demo's
callback URL is on 127.0.0.1).

A host name has one spelling, IDNA 2008 with UTS 46 mapping (``straße`` is
``xn--strae-oqa``, never ``strasse`` as IDNA 2003 has it): the URL is stored, checked and
called with that ASCII name, and the resolver is asked for exactly those bytes. A name
passes only if it resolves and every address it resolves to passes. The check made when
a tenant sets its URL is advice; what protects the network is that a delivery resolves
once and connects to the addresses it checked (:mod:`.pinned`).

What the tenant is told never depends on what the gateway's resolver knows about a name
(an internal name and a missing one read alike); :attr:`CallbackURLRefused.detail`
keeps the particulars for the operator's log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import idna

from dynaseal.gateway.callbacks.addresses import IPAddress, Scope, classify

#: Longest callback URL, as stored (``String(2048)`` columns).
MAX_URL_LENGTH = 2048

#: ``(ascii_host, port, family)`` to the addresses it resolves to; raises OSError.
Lookup = Callable[[str, int, int], Awaitable[list[IPAddress]]]


class CallbackURLRefused(ValueError):
    """Not an acceptable callback target. ``str(exc)`` is what the tenant may be told;
    ``detail`` is for the operator's log."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class InvalidCallbackURL(CallbackURLRefused):
    """The URL is malformed: no address was looked at."""


class AddressRefused(CallbackURLRefused):
    """The URL's host is an IP address the policy refuses."""


class HostRefused(CallbackURLRefused):
    """The host name does not resolve, or not only to addresses the policy allows; which
    of the two, and to what, only the detail says."""


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    def permits(self, address: IPAddress) -> bool:
        scope = classify(address).scope
        if scope is Scope.LOOPBACK:
            return self.allow_loopback or self.allow_private
        if scope is Scope.PRIVATE:
            return self.allow_private
        return scope is Scope.PUBLIC


@dataclass(frozen=True, slots=True)
class CallbackURL:
    url: str  # as stored and sent: the host in its one ASCII spelling
    host: str  # that spelling, or the IP address (IPv6 without brackets)
    port: int
    address: IPAddress | None  # when the host is an IP address


#: The setting that lets the operator allow a scope; the others are never allowed.
_SETTINGS = {Scope.LOOPBACK: "ALLOW_LOOPBACK_CALLBACKS", Scope.PRIVATE: "ALLOW_PRIVATE_CALLBACKS"}


def _invalid(message: str) -> InvalidCallbackURL:
    return InvalidCallbackURL(f"callback_url {message}")


def _spelled(hostname: str) -> tuple[str, IPAddress | None]:
    """The host's one ASCII spelling, and its address if it is an IP address."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise _invalid("must not name an IPv6 zone")
        return address.compressed, address
    last = hostname.rstrip(".").rpartition(".")[2]
    if last.isdigit() or last.startswith("0x"):
        # 127.1, 2130706433, 0x7f.1: IPv4 in forms resolvers accept and URLs do not.
        raise _invalid("has a host that is neither an IP address nor a host name")
    try:
        return idna.encode(hostname, uts46=True).decode("ascii"), None
    except UnicodeError:  # idna.IDNAError is one
        raise _invalid(
            "has a host that is not a valid (internationalised) host name: letters, digits "
            "and hyphens, labels of 1 to 63 characters, at most 253 in all"
        ) from None


def parse_callback_url(url: str) -> CallbackURL:
    """The URL in the form it is stored and sent, or :class:`InvalidCallbackURL`."""
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"is longer than {MAX_URL_LENGTH} characters")
    if not url.isprintable() or " " in url:
        # urlsplit would drop tabs and newlines silently; PostgreSQL refuses NUL.
        raise _invalid("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _invalid("is not a valid URL") from None
    try:
        port = parts.port
    except ValueError:
        raise _invalid("has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not carry credentials")
    host, address = _spelled(parts.hostname)
    netloc = f"[{host}]" if isinstance(address, ipaddress.IPv6Address) else host
    if port is not None:
        netloc += f":{port}"
    spelled = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if len(spelled) > MAX_URL_LENGTH:
        raise _invalid(f"is longer than {MAX_URL_LENGTH} characters once its host is encoded")
    default_port = 443 if parts.scheme == "https" else 80
    return CallbackURL(spelled, host, port or default_port, address)


def checked_target(url: str, policy: CallbackPolicy) -> CallbackURL:
    """The parsed URL, if its host is a name or an IP address the policy allows. (A name
    is checked when it is resolved, by :func:`resolve_checked`.)"""
    target = parse_callback_url(url)
    if target.address is not None and not policy.permits(target.address):
        verdict = classify(target.address)
        setting = _SETTINGS.get(verdict.scope)
        unless = f" unless its operator sets {setting}=true" if setting else ", whatever is set"
        raise AddressRefused(
            f"callback_url is a non-public address ({verdict.reason}), which this gateway "
            f"does not call{unless}",
            f"{url}: {verdict.reason}",
        )
    return target


async def system_lookup(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[IPAddress]:
    """The system resolver, asked for the ASCII name as bytes: no second IDNA encoding."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host.encode("ascii"), port, family=family, type=socket.SOCK_STREAM
    )
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


async def resolve_checked(
    host: str,
    port: int,
    policy: CallbackPolicy,
    *,
    family: int = socket.AF_UNSPEC,
    lookup: Lookup = system_lookup,
) -> list[IPAddress]:
    """Resolve ``host`` once; return its addresses if the policy allows every one of them,
    else raise :class:`HostRefused`. The caller connects to these, and to nothing else."""
    refused = (
        f"callback_url's host {host} must resolve, and only to public addresses, unless this "
        "gateway's operator allows loopback (ALLOW_LOOPBACK_CALLBACKS=true) or private ones "
        "(ALLOW_PRIVATE_CALLBACKS=true)"
    )
    if not host.isascii():
        raise HostRefused(refused, f"{host!r} is not in its ASCII spelling")
    try:
        addresses = await lookup(host, port, family)
    except OSError as exc:
        raise HostRefused(refused, f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise HostRefused(refused, f"{host} resolves to no address")
    for address in addresses:
        if not policy.permits(address):
            detail = f"{host} resolves to a refused address: {classify(address).reason}"
            raise HostRefused(refused, detail)
    return addresses


async def check_callback_url(
    url: str, policy: CallbackPolicy, *, lookup: Lookup = system_lookup
) -> str:
    """The URL as it is to be stored (its host in the one ASCII spelling), if the policy
    allows its host today; else :class:`CallbackURLRefused`."""
    target = checked_target(url, policy)
    if target.address is None:
        await resolve_checked(target.host, target.port, policy, lookup=lookup)
    return target.url

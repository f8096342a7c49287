"""Callback URLs as an attacker picks them: names that resolve one way when checked and
another way when called (TTL-0 rebinding; IDNA 2003 and IDNA 2008 spellings of one name),
IPv6 forms that embed an internal IPv4 address, hosts that fail IDNA, URLs longer than the
column, and the attempt log read as a port scanner.

The name server is :class:`support.fake_dns.FakeDNS`, in place of the system resolver.
With no public address on loopback, 127.0.0.2 stands for the internet
(:class:`InternetOn127002`); the internal service it must never reach listens on
127.0.0.1, on the same port.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from dynaseal.gateway import services as gateway_services
from dynaseal.gateway.app import create_app
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.callbacks.delivery import DeliveryWorker
from dynaseal.gateway.callbacks.pinned import PinnedSession
from dynaseal.gateway.callbacks.url_policy import CallbackPolicy
from dynaseal.gateway.metrics import GatewayMetrics
from dynaseal.gateway.secrets_box import SecretsBox
from dynaseal.gateway.settings import GatewaySettings
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import CallbackAttempt, CallbackDelivery
from dynaseal.storage.schema import upgrade
from support.callbacks import CallbackSink
from support.databases import NewDatabase, fresh_database
from support.fake_dns import FakeDNS
from support.servers import ServerThread, free_port, serve
from support.tenants import ADMIN_PASSWORD, TENANT_PASSWORD, create_tenant, login
from support.tls import server_certificate
from support.upstream import FakeUpstream

PUBLIC = "127.0.0.2"  # stands for an address on the internet
INTERNAL = "127.0.0.1"  # a service inside the gateway's network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class InternetOn127002(CallbackPolicy):
    """The policy under test, with 127.0.0.2 as the one public address there is."""

    def permits(self, address: IPAddress) -> bool:
        return str(address) == PUBLIC


@dataclass
class Receivers:
    """The same port on the internet stand-in and on the internal address."""

    port: int
    public: CallbackSink
    internal: CallbackSink

    def url(self, host: str) -> str:
        return f"http://{host}:{self.port}/v1/callback/usage"


def _port_free_on_both() -> int:
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind((PUBLIC, port))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def receivers_on_both() -> Iterator[Receivers]:
    port = _port_free_on_both()
    public, internal = CallbackSink(), CallbackSink()
    with (
        serve(public.app(), port, host=PUBLIC),
        serve(internal.app(), port, host=INTERNAL),
    ):
        yield Receivers(port, public, internal)


@pytest.fixture
def receivers(receivers_on_both: Receivers) -> Receivers:
    receivers_on_both.public.reset()
    receivers_on_both.internal.reset()
    return receivers_on_both


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    return fake


# --- one delivery attempt at a time, by the delivery loop itself --------------------------


async def attempt_each(
    database_url: NewDatabase, urls: list[str]
) -> list[tuple[CallbackDelivery, CallbackAttempt]]:
    """Queue a callback to each URL, let the delivery loop try each once under
    :class:`InternetOn127002`, and return each row with its attempt as the tenant sees it."""
    db = Database(database_url("gateway"))
    await upgrade(db, "gateway")
    async with db.transaction() as session:
        ids = [
            outbox.enqueue(
                session, tenant_id="t", url=url, payload={"type": "usage", "tokens": 0}
            ).id
            for url in urls
        ]
    worker = DeliveryWorker(
        db,
        SecretsBox("s"),
        InternetOn127002(),
        timeout=3,
        metrics=GatewayMetrics(),
        retry_schedule=[3600.0],
    )
    try:
        assert await worker.deliver_due() == len(urls)
        seen = []
        async with db.sessions() as session:
            for row_id in ids:
                row = await outbox.get_delivery(session, "t", row_id)
                [attempt] = await outbox.attempts_of(session, row_id)
                seen.append((row, attempt))
    finally:
        await worker.stop()
        await db.dispose()
    return seen


def shown(attempt: CallbackAttempt) -> tuple[Any, ...]:
    """What GET /v1/deliveries/{id} shows the tenant of an attempt, but its time and URL."""
    return (attempt.status_code, attempt.error, attempt.duration_ms)


async def test_a_rebinding_name_is_sent_only_to_the_address_that_was_checked(
    database_url: NewDatabase, dns: FakeDNS, receivers: Receivers
) -> None:
    """TTL 0: public when looked up first, internal ever after. One lookup is all a
    delivery makes, so the callback goes where the check said it may."""
    dns.answer("rebind.test", PUBLIC, INTERNAL)
    [(row, attempt)] = await attempt_each(database_url, [receivers.url("rebind.test")])
    assert receivers.internal.payloads() == []
    [received] = receivers.public.received
    assert received.headers["host"] == f"rebind.test:{receivers.port}"
    assert row.status == "delivered" and attempt.status_code == 200
    assert dns.lookups == ["rebind.test"]


async def test_the_host_header_and_tls_keep_the_name(tmp_path: Path, dns: FakeDNS) -> None:
    """Pinned to the checked address, the request still names the host: Host header, SNI
    and certificate check. A name the certificate does not cover fails, on the same
    address."""
    certificate = server_certificate(tmp_path, "callback.test")
    dns.answer("callback.test", PUBLIC)
    dns.answer("impostor.test", PUBLIC)
    receiver = CallbackSink()
    session = PinnedSession(
        InternetOn127002(), tls=ssl.create_default_context(cadata=certificate.ca_pem)
    )
    tls_files = {"ssl_certfile": certificate.certfile, "ssl_keyfile": certificate.keyfile}
    with serve(receiver.app(), host=PUBLIC, **tls_files) as server:
        try:
            url = f"https://callback.test:{server.port}/v1/callback/usage"
            async with session.post(url, data="{}", headers={}) as response:
                assert response.status == 200
            impostor = f"https://impostor.test:{server.port}/v1/callback/usage"
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.post(impostor, data="{}", headers={}):
                    pass
        finally:
            await session.aclose()
    [received] = receiver.received
    assert received.headers["host"] == f"callback.test:{server.port}"


async def test_the_idna_2003_and_2008_spellings_of_a_name_cannot_split_check_and_send(
    database_url: NewDatabase, dns: FakeDNS, receivers: Receivers
) -> None:
    """``straße`` is ``strasse`` in IDNA 2003 and ``xn--strae-oqa`` in IDNA 2008: two
    names. The gateway spells a host one way only (IDNA 2008, UTS 46), checks and calls
    that name, and so never the internal address the other spelling has."""
    dns.answer("strasse.test", PUBLIC)
    dns.answer("xn--strae-oqa.test", INTERNAL)
    [(row, attempt)] = await attempt_each(database_url, [receivers.url("straße.test")])
    assert receivers.internal.payloads() == [] and receivers.public.payloads() == []
    assert set(dns.lookups) == {"xn--strae-oqa.test"}
    assert row.status != "delivered" and attempt.status_code is None
    assert INTERNAL not in (attempt.error or "")


async def test_the_attempt_log_is_no_port_scanner(
    database_url: NewDatabase, dns: FakeDNS, receivers: Receivers
) -> None:
    """Rebinding names aimed at an open and at a closed internal port: the tenant's
    attempt log reads the same for both, and the open one received nothing."""
    closed = free_port()
    dns.answer("open.test", PUBLIC, INTERNAL)
    dns.answer("closed.test", PUBLIC, INTERNAL)
    (_, to_open), (_, to_closed) = await attempt_each(
        database_url,
        [receivers.url("open.test"), f"http://closed.test:{closed}/v1/callback/usage"],
    )
    assert receivers.internal.payloads() == []
    assert receivers.public.payloads() != [] and to_open.status_code == 200  # the stand-in
    # The closed port was looked for on the address that was checked, not inside.
    assert to_closed.status_code is None and INTERNAL not in (to_closed.error or "")
    assert str(closed) not in (to_closed.error or "")


async def test_the_attempt_log_does_not_tell_internal_names_from_missing_ones(
    database_url: NewDatabase, dns: FakeDNS
) -> None:
    """A name that resolves to an internal address and one that does not exist look the
    same to the tenant (no address, no timing), so the log maps no internal DNS."""
    port = free_port()
    dns.answer("db.internal.test", INTERNAL)
    dns.answer("missing.internal.test")  # NXDOMAIN
    (row_a, internal), (row_b, missing) = await attempt_each(
        database_url,
        [f"http://db.internal.test:{port}/cb", f"http://missing.internal.test:{port}/cb"],
    )
    assert shown(internal) == shown(missing)
    assert (row_a.status, row_a.last_error) == (row_b.status, row_b.last_error)
    assert internal.status_code is None and INTERNAL not in (internal.error or "")


# --- through the gateway's routes ---------------------------------------------------------


@pytest.fixture(scope="module")
def guarded_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[ServerThread]:
    """A gateway whose policy takes 127.0.0.2 for the internet and refuses 127.0.0.1. It
    runs on asyncio's loop so its lookups go through ``socket.getaddrinfo`` (uvloop's do
    not), and retries only after an hour, so each action makes one attempt."""
    directory: Path = tmp_path_factory.mktemp("guarded-gateway")
    with fresh_database(directory, "gateway") as url:
        settings = GatewaySettings(
            database_url=url,
            openai_base_url=f"{upstream.url}/v1",
            admin_user_password=ADMIN_PASSWORD,
            callback_retry_schedule_seconds=[3600.0],
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(gateway_services, "CallbackPolicy", InternetOn127002)
            app = create_app(settings)
        with serve(app, loop="asyncio") as server:
            yield server


def set_callback_url(tenant: Any, url: str) -> httpx.Response:
    return httpx.patch(
        tenant.base_url + "/v1/user/me", headers=tenant.auth, json={"callback_url": url}
    )


def wait_for_attempts(gateway: ServerThread, owner: dict[str, str], delivery_id: str) -> Any:
    """The delivery once its (re)sent attempt is in the log."""
    deadline = time.monotonic() + 10
    while True:
        shown = httpx.get(f"{gateway.url}/v1/deliveries/{delivery_id}", headers=owner).json()
        if shown["attempts"] >= 1 or time.monotonic() > deadline:
            return shown
        time.sleep(0.05)


def test_setting_a_url_checks_the_name_the_gateway_will_call(
    guarded_gateway: ServerThread, dns: FakeDNS, receivers: Receivers
) -> None:
    dns.answer("strasse.test", PUBLIC)
    dns.answer("xn--strae-oqa.test", INTERNAL)
    tenant = create_tenant(guarded_gateway.url)
    refused = set_callback_url(tenant, receivers.url("straße.test"))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "callback_url"
    assert INTERNAL not in refused.text
    me = httpx.get(guarded_gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert me["callback_url"] is None
    # What is stored is the spelling that is checked and called.
    dns.answer("xn--bcher-kva.test", PUBLIC)
    accepted = set_callback_url(tenant, f"http://Bücher.TEST:{receivers.port}/cb")
    assert accepted.json()["callback_url"] == f"http://xn--bcher-kva.test:{receivers.port}/cb"

    admin = login(guarded_gateway.url, "admin", ADMIN_PASSWORD)
    name = f"t-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": TENANT_PASSWORD}
    body["callback_url"] = receivers.url("straße.test")
    created = httpx.post(guarded_gateway.url + "/v1/tenants", headers=admin, json=body)
    assert created.status_code == 400, created.text
    assert (
        httpx.post(
            guarded_gateway.url + "/v1/user/login",
            data={"username": name, "password": TENANT_PASSWORD},
        ).status_code
        == 401
    )


def test_setting_a_url_answers_alike_for_internal_and_missing_names(
    guarded_gateway: ServerThread, dns: FakeDNS
) -> None:
    dns.answer("db.internal.test", INTERNAL)
    dns.answer("missing.internal.test")
    tenant = create_tenant(guarded_gateway.url)
    internal = set_callback_url(tenant, "http://db.internal.test/cb")
    missing = set_callback_url(tenant, "http://missing.internal.test/cb")
    assert internal.status_code == missing.status_code == 400
    assert internal.json()["error"]["message"] == missing.json()["error"]["message"].replace(
        "missing.internal.test", "db.internal.test"
    )
    assert INTERNAL not in internal.text


def test_test_events_and_resends_take_the_pinned_path(
    guarded_gateway: ServerThread, dns: FakeDNS, receivers: Receivers
) -> None:
    """The name is public when set and at the next lookup, internal after that: the test
    event goes to the public address, and neither it nor its resend reaches inside."""
    dns.answer("rebind.test", PUBLIC, PUBLIC, INTERNAL)
    tenant = create_tenant(guarded_gateway.url)
    assert set_callback_url(tenant, receivers.url("rebind.test")).status_code == 200

    test_event = httpx.post(guarded_gateway.url + "/v1/deliveries/test", headers=tenant.auth)
    assert test_event.status_code == 201, test_event.text
    assert len(receivers.public.wait_for(1, type="test")) == 1
    delivery_id = test_event.json()["id"]
    assert wait_for_attempts(guarded_gateway, tenant.auth, delivery_id)["status"] == "delivered"

    dns.answer("rebind.test", INTERNAL)
    resent = httpx.post(
        f"{guarded_gateway.url}/v1/deliveries/{delivery_id}/resend", headers=tenant.auth
    )
    assert resent.status_code == 200
    wait_for_attempts(guarded_gateway, tenant.auth, delivery_id)
    assert receivers.internal.payloads() == []


# --- addresses: the IANA special-purpose registries ---------------------------------------

# address, then whether it may be called: by default / with loopback allowed / with
# private networks allowed.
ADDRESSES = [
    # public
    ("8.8.8.8", True, True, True),
    ("172.32.0.1", True, True, True),
    ("100.128.0.1", True, True, True),
    ("2606:4700:4700::1111", True, True, True),
    ("::ffff:8.8.8.8", True, True, True),  # IPv4-mapped: the IPv4 address itself
    ("64:ff9b::8.8.8.8", True, True, True),  # NAT64 well-known prefix: translated to it
    # loopback
    ("127.0.0.1", False, True, True),
    ("127.255.255.254", False, True, True),
    ("::1", False, True, True),
    ("::ffff:127.0.0.1", False, True, True),
    # private networks
    ("10.0.0.1", False, False, True),
    ("172.16.5.4", False, False, True),
    ("192.168.1.1", False, False, True),
    ("100.64.0.1", False, False, True),  # shared address space (carrier-grade NAT)
    ("fd00::1", False, False, True),  # unique local
    ("::ffff:10.0.0.1", False, False, True),
    ("64:ff9b::10.0.0.1", False, False, True),
    # never: link-local (cloud metadata lives there), transition forms that embed IPv4
    # and are deprecated or local, and every other special-purpose range
    ("169.254.169.254", False, False, False),
    ("fe80::1", False, False, False),
    ("::127.0.0.1", False, False, False),  # IPv4-compatible (deprecated)
    ("::8.8.8.8", False, False, False),
    ("::ffff:0:127.0.0.1", False, False, False),  # IPv4-translated
    ("64:ff9b:1::10.0.0.1", False, False, False),  # local-use NAT64
    ("64:ff9b:1::8.8.8.8", False, False, False),
    ("2002:7f00:1::1", False, False, False),  # 6to4 of 127.0.0.1
    ("2002:808:808::1", False, False, False),  # 6to4 (deprecated) of 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False, False, False),  # Teredo
    ("fec0::1", False, False, False),  # site-local (deprecated)
    ("0.0.0.0", False, False, False),
    ("0.1.2.3", False, False, False),
    ("::", False, False, False),
    ("192.0.0.1", False, False, False),
    ("192.0.0.9", False, False, False),
    ("192.0.0.170", False, False, False),
    ("192.0.2.1", False, False, False),
    ("192.31.196.1", False, False, False),
    ("192.52.193.1", False, False, False),
    ("192.88.99.1", False, False, False),
    ("192.175.48.1", False, False, False),
    ("198.18.0.1", False, False, False),
    ("198.51.100.1", False, False, False),
    ("203.0.113.1", False, False, False),
    ("224.0.0.1", False, False, False),
    ("239.255.255.250", False, False, False),
    ("240.0.0.1", False, False, False),
    ("255.255.255.255", False, False, False),
    ("100::1", False, False, False),
    ("100:0:0:1::1", False, False, False),
    ("2001:1::1", False, False, False),
    ("2001:2::1", False, False, False),
    ("2001:3::1", False, False, False),
    ("2001:4:112::1", False, False, False),
    ("2001:10::1", False, False, False),
    ("2001:20::1", False, False, False),
    ("2001:30::1", False, False, False),
    ("2001:db8::1", False, False, False),
    ("2620:4f:8000::1", False, False, False),
    ("3fff::1", False, False, False),
    ("5f00::1", False, False, False),
    ("ff02::1", False, False, False),
    ("4000::1", False, False, False),  # outside global unicast (2000::/3)
    ("::2", False, False, False),
]


@pytest.mark.parametrize(("address", "default", "loopback", "private"), ADDRESSES)
def test_special_purpose_addresses_are_not_public(
    address: str, default: bool, loopback: bool, private: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert CallbackPolicy().permits(ip) is default
    assert CallbackPolicy(allow_loopback=True).permits(ip) is loopback
    assert CallbackPolicy(allow_private=True).permits(ip) is private


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",
        "[::ffff:0:127.0.0.1]",
        "[64:ff9b::10.0.0.1]",
        "[64:ff9b:1::10.0.0.1]",
        "[2002:7f00:1::1]",
        "[fec0::1]",
    ],
)
def test_ipv6_forms_embedding_internal_ipv4_are_refused(gateway: ServerThread, host: str) -> None:
    """The shared gateway allows loopback (the demo's URL) but nothing else inside."""
    tenant = create_tenant(gateway.url)
    response = set_callback_url(tenant, f"http://{host}:8080/cb")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "callback_url"


# --- malformed URLs: 400, nothing stored, on every route that sets one --------------------

BAD_IDNA_HOSTS = ["ü" * 64 + ".example", "exa..mple.com", "bad_host.example"]


def too_long(length: int) -> str:
    base = "http://127.0.0.1:9/cb?"
    return base + "a" * (length - len(base))


@pytest.mark.parametrize(
    "url",
    [f"http://{host}/cb" for host in BAD_IDNA_HOSTS]
    + [too_long(2049), too_long(5000), "http://127.0.0.1:9/c\x00b", "http://127.0.0.1:9/c\tb"],
)
def test_a_bad_callback_url_is_a_400_and_nothing_is_stored(gateway: ServerThread, url: str) -> None:
    tenant = create_tenant(gateway.url)
    assert set_callback_url(tenant, too_long(2048)).status_code == 200  # the column's size
    response = set_callback_url(tenant, url)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "callback_url"
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    assert me["callback_url"] == too_long(2048)

    admin = login(gateway.url, "admin", ADMIN_PASSWORD)
    name = f"t-{uuid.uuid4().hex[:8]}"
    body = {"username": name, "password": TENANT_PASSWORD, "callback_url": url}
    for path in ("/v1/tenants", "/v1/admin/tenants"):
        created = httpx.post(gateway.url + path, headers=admin, json=body)
        assert created.status_code == 400, created.text
        assert created.json()["error"]["param"] == "callback_url"
    again = httpx.post(
        gateway.url + "/v1/tenants", headers=admin, json=body | {"callback_url": None}
    )
    assert again.status_code == 201  # the name was not taken by the refused attempt

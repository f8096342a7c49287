"""A realistic session, relayed vs Dynaseal: what the business backend carries.

One device, one end user, a 20-turn non-streaming conversation whose context grows each
turn (the device sends the whole history, as chat APIs require), ~300-word answers.
Relayed, every byte of it crosses the backend twice (device ↔ backend ↔ LLM). With
Dynaseal the backend sees the login, the key minting and the usage callbacks, counted on
its wire by :class:`~benchmarks.meter.ByteMeter`, under each callback setting.

The device mints a key when the one it holds could not pay for the next answer (it asks
for ``ANSWER_CAP`` tokens a turn) or would expire before the next turn, at a human pace
of ``PACE_SECONDS`` a turn; so the key policy decides how often it goes back to the
backend. The session runs as fast as the machine allows: batched callbacks gather what
many devices of one tenant would send within the batch window in real life.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

TURNS = 20
#: The ``max_tokens`` the device asks for each answer (the upstream writes ~300 words).
ANSWER_CAP = 512
#: Seconds between turns at a human pace (reading the answer, typing the next question).
PACE_SECONDS = 30
#: The backend's key policy before issue 10, which had a device mint every turn or two.
OLD_POLICY = (1_000, 600)
_SYSTEM = "You are a helpful assistant inside a note-taking app. Answer in detail. " * 6
_QUESTIONS = (
    "Summarise my notes from this week's planning meeting and what each team promised.",
    "Which of those items are at risk, and why? Use what was said in the meeting.",
    "Draft a short message to the design team about the two items they own.",
    "Now make it friendlier and mention the deadline we agreed on for the prototype.",
)


@dataclass(frozen=True, slots=True)
class SessionResult:
    """One way of holding the session; bytes on the backend's wire, by kind."""

    label: str
    backend_bytes: dict[str, dict[str, int]]
    keys_minted: int = 0
    deliveries: int = 0

    @property
    def total(self) -> int:
        return sum(
            b.get("bytes_in", 0) + b.get("bytes_out", 0) for b in self.backend_bytes.values()
        )

    def part(self, *buckets: str) -> int:
        return sum(
            self.backend_bytes.get(b, {}).get("bytes_in", 0)
            + self.backend_bytes.get(b, {}).get("bytes_out", 0)
            for b in buckets
        )


def _question(turn: int) -> dict[str, str]:
    text = _QUESTIONS[turn % len(_QUESTIONS)]
    return {"role": "user", "content": f"{text} (turn {turn + 1}) " * 2}


def _chat(http: httpx.Client, url: str, model: str, history: list[dict[str, str]], key: str) -> Any:
    reply = http.post(
        url,
        json={"model": model, "messages": history, "max_tokens": ANSWER_CAP},
        headers={"authorization": f"Bearer {key}"},
    )
    reply.raise_for_status()
    return reply.json()


def _meter(http: httpx.Client, url: str, *, reset: bool = False) -> dict[str, dict[str, int]]:
    from benchmarks.meter import METER_PATH

    reply = http.post(url + METER_PATH) if reset else http.get(url + METER_PATH)
    return dict(reply.json())


def relayed(relay_url: str, model: str) -> SessionResult:
    """The session through a relaying backend (no login even: a floor for a real one)."""
    with httpx.Client(timeout=60) as http:
        _meter(http, relay_url, reset=True)
        history = [{"role": "system", "content": _SYSTEM}]
        for turn in range(TURNS):
            history.append(_question(turn))
            answer = _chat(http, relay_url + "/v1/chat/completions", model, history, "device")
            history.append(answer["choices"][0]["message"])
        return SessionResult("(a) backend relays to the LLM", _meter(http, relay_url))


@dataclass(frozen=True, slots=True)
class Party:
    """Where the device and the tenant find the services, and who logs in."""

    gateway_url: str
    backend_url: str
    model: str
    username: str
    password: str
    tenant_token: str


def set_callbacks(party: Party, **settings: object) -> None:
    """The demo tenant's callback settings (content, batching)."""
    reply = httpx.patch(
        f"{party.gateway_url}/v1/user/me",
        json=settings,
        headers={"authorization": f"Bearer {party.tenant_token}"},
        timeout=30,
    )
    reply.raise_for_status()


def through_dynaseal(party: Party, label: str, policy: tuple[int, int]) -> SessionResult:
    """The session the Dynaseal way, with keys of ``policy`` (tokens, lifetime)."""
    budget, lifetime = policy
    with httpx.Client(timeout=60) as http:
        _meter(http, party.backend_url, reset=True)
        login = http.post(
            party.backend_url + "/v1/user/login",
            data={"username": party.username, "password": party.password},
        )
        login.raise_for_status()
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}
        history = [{"role": "system", "content": _SYSTEM}]
        key, left, minted_at, minted = "", 0, 0, 0
        for turn in range(TURNS):
            now = turn * PACE_SECONDS  # the session's clock at a human pace
            if left < ANSWER_CAP or now + PACE_SECONDS > minted_at + lifetime:
                created = http.post(
                    party.backend_url + "/v1/key/create",
                    json={"model": party.model, "max_tokens": budget},
                    headers=auth,
                )
                created.raise_for_status()
                key, left, minted_at, minted = created.json()["token"], budget, now, minted + 1
            history.append(_question(turn))
            answer = _chat(
                http, party.gateway_url + "/v1/chat/completions", party.model, history, key
            )
            history.append(answer["choices"][0]["message"])
            left -= answer["usage"]["completion_tokens"]
        deliveries = _await_callbacks(http, party)
        return SessionResult(label, _meter(http, party.backend_url), minted, deliveries)


def _await_callbacks(http: httpx.Client, party: Party, seconds: float = 120.0) -> int:
    """Until every callback of the session reached the backend; how many POSTs it took."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pending = http.get(
            f"{party.gateway_url}/v1/deliveries",
            params={"status": "pending", "limit": 1},
            headers={"authorization": f"Bearer {party.tenant_token}"},
        ).json()["data"]
        if not pending:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # the backend counts a request once its answer is sent: let it finish
    return int(_meter(http, party.backend_url).get("callback", {}).get("requests", 0))


_PARTS = (("login", "login"), ("keys", "key_create"), ("callbacks", "callback"))


def session_table(sessions: list[SessionResult]) -> Table:
    relay = sessions[0]
    table = Table(
        title=f"A {TURNS}-turn session, one device and one key: bytes on the backend's wire",
        title_justify="left",
    )
    for column in ("way", "backend bytes", "of which", "keys", "callback POSTs", "vs relay"):
        table.add_column(column, justify="left" if column in ("way", "of which") else "right")
    for session in sessions:
        if session is relay:
            split = f"device {session.part('relay'):,} + LLM {session.part('relay_upstream'):,}"
        else:
            split = " + ".join(
                f"{name} {session.part(bucket):,}"
                for name, bucket in (
                    ("login", "login"),
                    ("keys", "key_create"),
                    ("callbacks", "callback"),
                )
            )
        share = f"{session.total / relay.total:.2%}" if session is not relay else "100%"
        keys = str(session.keys_minted) if session is not relay else "-"
        posts = str(session.deliveries) if session is not relay else "-"
        table.add_row(session.label, f"{session.total:,} B", split, keys, posts, share)
    table.caption = (
        f"Each turn sends the whole conversation so far and asks for at most {ANSWER_CAP} "
        f"tokens; keys are minted when the next answer would not fit the key or the key "
        f"would expire before the next turn ({PACE_SECONDS} s a turn). Batched callbacks: "
        "callback_batch_seconds 5."
    )
    return table


def measure(gateway_url: str, backend_url: str, relay_url: str, model: str) -> list[SessionResult]:
    """The session relayed, then the Dynaseal way under each callback setting."""
    from dynaseal.backend.settings import BackendSettings
    from dynaseal.core.original_demo import (
        DEMO_TENANT_PASSWORD,
        DEMO_TENANT_USERNAME,
        DEMO_USER_PASSWORD,
        DEMO_USER_USERNAME,
    )

    tenant = httpx.post(
        f"{gateway_url}/v1/user/login",
        data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
        timeout=30,
    )
    tenant.raise_for_status()
    party = Party(
        gateway_url,
        backend_url,
        model,
        DEMO_USER_USERNAME,
        DEMO_USER_PASSWORD,
        tenant.json()["access_token"],
    )
    fields = BackendSettings.model_fields
    policy = (fields["key_budget_tokens"].default, fields["key_lifetime_seconds"].default)
    shown = f"keys of {policy[0]:,} tokens, {policy[1]} s"
    sessions = [relayed(relay_url, model)]
    set_callbacks(party, callback_include_content=True, callback_batch_seconds=0)
    sessions.append(through_dynaseal(party, f"(b) content in callbacks, {shown}", policy))
    set_callbacks(party, callback_include_content=False)
    sessions.append(through_dynaseal(party, "(c) content-free callbacks", policy))
    set_callbacks(party, callback_batch_seconds=5)
    sessions.append(through_dynaseal(party, "(d) content-free, batched", policy))
    old = f"(d) with the old policy: {OLD_POLICY[0]:,} tokens, {OLD_POLICY[1]} s"
    sessions.append(through_dynaseal(party, old, OLD_POLICY))
    set_callbacks(party, callback_batch_seconds=0)
    return sessions

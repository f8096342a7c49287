"""A chat completion posted the plainest way, for tests about what the gateway does with it."""

from __future__ import annotations

import httpx

from support.servers import ServerThread
from support.tenants import DEMO_MODEL

MESSAGES = [{"role": "user", "content": "Say hello"}]


def chat(gateway: ServerThread, key: str, **body: object) -> httpx.Response:
    """POST /v1/chat/completions with ``key``; ``body`` adds to or overrides the defaults."""
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, **body},
        timeout=30,
    )

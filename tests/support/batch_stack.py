"""A gateway and a reference backend as ``dynaseal`` processes, the demo tenant's callbacks
going from one to the other, and what a test asks of them (tests/test_callback_batches.py)."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from dynaseal.core.original_demo import DEMO_TENANT_PASSWORD, DEMO_TENANT_USERNAME
from support.commands import Service, started
from support.tenants import DEMO_MODEL, bearer, login

BACKEND_ADMIN_PASSWORD = "backend-admin-password"


def ask(gateway_url: str, key: str, count: int) -> None:
    """``count`` chat completions with ``key``, one after the other, as a device makes them."""
    device = openai.OpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0)
    for _ in range(count):
        device.chat.completions.create(
            model=DEMO_MODEL, messages=[{"role": "user", "content": "hi"}]
        )


@dataclass
class Stack:
    """A gateway and a backend, each a ``dynaseal`` process, on databases of their own."""

    directory: Path
    gateway_url: str
    backend_port: int
    backend_env: dict[str, str]
    processes: ExitStack = field(default_factory=ExitStack)
    backend: Service | None = None
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def backend_url(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def start_backend(self) -> None:
        """Start the backend (on the same port and database each time) unless it runs."""
        if self.backend is not None and self.backend.process.poll() is None:
            return
        args = ("backend", "--port", str(self.backend_port), "--demo-data")
        self.backend = self.processes.enter_context(
            started(*args, cwd=self.directory, env=self.backend_env)
        )
        self.backend.wait_ready(self.backend_url + "/healthz")

    def stop_backend(self) -> None:
        assert self.backend is not None
        assert self.backend.stop() in (0, -signal.SIGTERM)

    def tenant(self) -> dict[str, str]:
        if "tenant" not in self.tokens:
            self.tokens["tenant"] = login(
                self.gateway_url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD
            )
        return self.tokens["tenant"]

    def batching(self, seconds: float, most: int) -> None:
        body = {"callback_batch_seconds": seconds, "callback_batch_max": most}
        changed = httpx.patch(self.gateway_url + "/v1/user/me", headers=self.tenant(), json=body)
        assert changed.status_code == 200, changed.text

    def ask(self, key: str, count: int) -> None:
        ask(self.gateway_url, key, count)

    def stored(self, event_id: str) -> list[dict[str, Any]]:
        """The usage the backend stored for ``event_id`` (as its admin sees it)."""
        with httpx.Client(base_url=self.backend_url) as http:
            if "backend" not in self.tokens:
                self.tokens["backend"] = bearer(
                    http.post(
                        "/v1/user/login",
                        data={"username": "admin", "password": BACKEND_ADMIN_PASSWORD},
                    ).json()["access_token"]
                )
            usage = http.get(
                "/v1/usage",
                params={"event_id": event_id, "limit": 1000},
                headers=self.tokens["backend"],
            )
        assert usage.status_code == 200, usage.text
        return list(usage.json()["data"])

    def deliveries(self) -> list[dict[str, Any]]:
        listed = httpx.get(
            self.gateway_url + "/v1/deliveries", params={"limit": 1000}, headers=self.tenant()
        )
        assert listed.status_code == 200, listed.text
        return list(listed.json()["data"])

    def batches_of(self, event_id: str) -> list[dict[str, Any]]:
        """The ``usage.batch`` deliveries carrying ``event_id``'s usage, with payloads."""
        found = []
        for row in self.deliveries():
            if row["type"] != "usage.batch":
                continue
            detail = httpx.get(
                f"{self.gateway_url}/v1/deliveries/{row['id']}", headers=self.tenant()
            ).json()
            if any(event["event_id"] == event_id for event in detail["payload"]["data"]):
                found.append(detail)
        return found

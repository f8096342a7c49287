"""A stand-in for the gateway's key checks, for device-client tests.

It verifies keys as the gateway is to (the demo tenant's secret, child chains, DPoP
proofs with a replay set) using only ``dynaseal.keys``, answers chat completions in
OpenAI's format, and can be told that keys are spent. It is what the device sees; the
real gateway's admission is tested in the gateway's own tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dynaseal.core.original_demo import DEMO_TENANT_API_KEY
from dynaseal.keys import (
    DEFAULT_AUDIENCE,
    InvalidDpopProof,
    InvalidKey,
    KeyGrant,
    VerificationKey,
    peek_chain,
    verify_binding,
    verify_child_chain,
    verify_key,
)

_TENANT_KEYS = [VerificationKey("demo", "HS256", DEMO_TENANT_API_KEY.encode())]


def _refusal(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    error = {"message": message, "type": code, "param": None, "code": code}
    refusal = "insufficient_quota" if status == 429 else "invalid_key"
    return JSONResponse(
        {"error": error}, status_code=status, headers={"x-dynaseal-refusal": refusal} | headers
    )


@dataclass
class StandInGateway:
    url: str = ""
    #: Tokens whose budget the test declared spent (``spend_everything``: all of them).
    spent: set[str] = field(default_factory=set)
    spend_everything: bool = False
    #: Every token presented, in order.
    seen: list[str] = field(default_factory=list)
    #: Per answered request: the event ids it would be charged to, root first.
    charged: list[list[str]] = field(default_factory=list)
    #: Why each refused request was refused (the gateway's log).
    refused: list[str] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)
    _replays: set[str] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    def grants(self, request: Request, token: str) -> tuple[KeyGrant, ...]:
        now = time.time()
        chain = peek_chain(token)
        root = verify_key(chain.root, _TENANT_KEYS, audience=DEFAULT_AUDIENCE, now=now)
        grants = verify_child_chain(chain, root, now=now)
        proofs = request.headers.getlist("dpop")
        proof = verify_binding(
            grants[-1], token, proofs, htm=request.method, htu=str(request.url), now=now
        )
        if proof is not None:
            if proof.replay_key in self._replays:
                raise InvalidDpopProof("proof replayed")
            self._replays.add(proof.replay_key)
            self.proofs.append(proofs[0])
        return grants

    async def chat(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        self.seen.append(token)
        try:
            if scheme.lower() not in ("bearer", "dpop"):
                raise InvalidKey("no key")
            grants = self.grants(request, token)
        except InvalidKey as exc:
            self.refused.append(exc.reason)
            challenge = (
                'DPoP error="invalid_dpop_proof"' if isinstance(exc, InvalidDpopProof) else "Bearer"
            )
            return _refusal(
                401,
                "invalid_api_key",
                "Invalid, expired or revoked dynamic key.",
                **{"WWW-Authenticate": challenge},
            )
        if self.spend_everything or token in self.spent:
            return _refusal(429, "insufficient_quota", "This key's budget is spent.")
        self.charged.append([grant.event_id for grant in grants])
        body: dict[str, Any] = await request.json()
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "deepseek-chat"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    def reset(self) -> None:
        self.spent.clear()
        self.spend_everything = False
        for record in (self.seen, self.charged, self.refused, self.proofs):
            record.clear()

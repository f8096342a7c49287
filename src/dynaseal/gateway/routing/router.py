"""The router: an :class:`~dynaseal.gateway.relay.upstream.Upstream` in front of many.

For each request it picks the deployments that serve the model and the endpoint (by
weight, resting ones skipped) and tries them in turn: a connection error, a timeout, a
429 or a 5xx **before the device got a byte** sends the request to the next one, after a
short backoff, up to ``max_attempts``. Once a reply has proved itself (:mod:`.primed`)
it is the answer: a failure later ends the stream, it is never silently retried.

A Responses request for a deployment that serves only chat completions is translated
(:mod:`dynaseal.gateway.translation`). Every attempt is noted for the ledger row; the
chosen deployment, the upstream's request id and its rate-limit headers (the operator's
account, never shown to devices) go to the request's access line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dynaseal.core.access_log import note
from dynaseal.core.errors import APIError, bad_request
from dynaseal.gateway.endpoints.base import EndpointName
from dynaseal.gateway.relay.attempts import Attempt
from dynaseal.gateway.relay.upstream import UpstreamError, UpstreamReply
from dynaseal.gateway.routing.config import RouterPolicy
from dynaseal.gateway.routing.deployment import Deployment
from dynaseal.gateway.routing.order import attempt_order
from dynaseal.gateway.routing.primed import prime
from dynaseal.gateway.translation.reply import TranslatedReply
from dynaseal.gateway.translation.requests import to_chat

log = logging.getLogger("dynaseal.gateway.routing")

_PATHS: dict[str, EndpointName] = {
    "/chat/completions": "chat",
    "/responses": "responses",
    "/embeddings": "embeddings",
    "/completions": "completions",
}
_PROBE_SECONDS = 2.0


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _outcome(error: UpstreamError) -> str:
    return "timeout" if "Timeout" in str(error) else "connect_error"


def rate_limits(headers: Mapping[str, str]) -> str:
    """The upstream's ``x-ratelimit-*`` headers as one log field (``name=value …``)."""
    return " ".join(
        f"{name.lower().removeprefix('x-ratelimit-')}={value}"
        for name, value in headers.items()
        if name.lower().startswith("x-ratelimit-")
    )


class Router:
    def __init__(
        self,
        deployments: Sequence[Deployment],
        policy: RouterPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.deployments = list(deployments)
        self._policy = policy
        self._rng = rng or random.Random()
        if len(self.deployments) == 1:
            self.description = self.deployments[0].upstream.description
        else:
            self.description = f"{len(self.deployments)} deployments"

    # ------------------------------------------------------------------ what it serves

    def _of_model(self, model: str) -> list[Deployment]:
        named = [d for d in self.deployments if d.model == model]
        return named or [d for d in self.deployments if d.catch_all]

    def serves(self, model: str) -> bool:
        return bool(self._of_model(model))

    def _candidates(
        self, endpoint: EndpointName, body: dict[str, Any]
    ) -> list[tuple[Deployment, bool]]:
        """(deployment, translated) pairs that can serve the request; a 400 if none can."""
        model = str(body.get("model"))
        of_model = self._of_model(model)
        native = [(d, False) for d in of_model if endpoint in d.endpoints]
        chat_only = [d for d in of_model if endpoint not in d.endpoints and "chat" in d.endpoints]
        translated: list[tuple[Deployment, bool]] = []
        if endpoint == "responses" and chat_only:
            try:
                to_chat(body)
            except APIError:
                if not native:
                    raise
            else:
                translated = [(d, True) for d in chat_only]
        if not native and not translated:
            raise bad_request(
                f"The model {model!r} is not served for {endpoint} on this gateway.",
                param="model",
            )
        return native + translated

    def screen(self, endpoint: EndpointName, body: dict[str, Any]) -> None:
        """Refuse (400) a request no deployment can serve, before budget is reserved."""
        self._candidates(endpoint, body)

    # ------------------------------------------------------------------ sending

    async def send(
        self,
        body: dict[str, Any],
        *,
        path: str = "/chat/completions",
        attempts: list[Attempt] | None = None,
    ) -> UpstreamReply:
        noted = attempts if attempts is not None else []
        candidates = dict(self._candidates(_PATHS[path], body))
        order = attempt_order(list(candidates), self._rng, self._policy.max_attempts)
        stream = bool(body.get("stream"))
        failure: UpstreamError | None = None
        for number, deployment in enumerate(order):
            if number:
                await asyncio.sleep(self._policy.backoff_seconds * 2 ** (number - 1))
            last = number == len(order) - 1
            started = time.monotonic()
            try:
                reply = await self._try(deployment, candidates[deployment], body, path, stream)
            except UpstreamError as exc:
                noted.append(Attempt(deployment.name, _outcome(exc), _ms(started)))
                log.warning("deployment %s failed: %s", deployment.name, exc)
                deployment.failed()
                failure = exc
                continue
            noted.append(Attempt(deployment.name, reply.status_code, _ms(started)))
            self._note(deployment, reply)
            if _retryable(reply.status_code):
                deployment.failed()
                if not last:
                    log.warning("deployment %s answered %d", deployment.name, reply.status_code)
                    await reply.aclose()
                    continue
            else:
                deployment.succeeded()
            return reply
        raise failure or UpstreamError("no deployment could be tried")

    async def _try(
        self,
        deployment: Deployment,
        translated: bool,
        body: dict[str, Any],
        path: str,
        stream: bool,
    ) -> UpstreamReply:
        sent = {**body, "model": deployment.upstream_model or body["model"]}
        if translated:
            chat = await deployment.upstream.send(to_chat(sent), path="/chat/completions")
            reply: UpstreamReply = TranslatedReply(chat, body)
        else:
            reply = await deployment.upstream.send(sent, path=path)
        if reply.status_code != 200:
            return reply
        return await prime(reply, stream)

    @staticmethod
    def _note(deployment: Deployment, reply: UpstreamReply) -> None:
        limits = rate_limits(reply.headers)
        note(
            deployment=deployment.name,
            upstream_request_id=reply.headers.get("x-request-id"),
            **({"upstream_ratelimit": limits} if limits else {}),
        )
        if reply.status_code == 429:
            log.warning("deployment %s is rate limited: %s", deployment.name, limits or "-")

    # ------------------------------------------------------------------ health

    async def _probe_one(self, deployment: Deployment) -> bool:
        try:
            await asyncio.wait_for(deployment.upstream.probe(), _PROBE_SECONDS)
        except Exception as exc:
            log.warning(
                "not ready: upstream deployment %s: %s: %s",
                deployment.name,
                type(exc).__name__,
                exc,
            )
            return False
        return True

    async def readiness(self) -> dict[str, bool]:
        """Each deployment: reachable or not (checked at once, concurrently)."""
        results = await asyncio.gather(*(self._probe_one(d) for d in self.deployments))
        return {d.name: ok for d, ok in zip(self.deployments, results, strict=True)}

    def models_covered(self, reachable: Mapping[str, bool]) -> bool:
        """Whether every public model has a reachable deployment."""
        models = {d.model for d in self.deployments}
        return all(any(reachable[d.name] for d in self.deployments if d.model == m) for m in models)

    async def probe(self) -> None:
        if not self.models_covered(await self.readiness()):
            raise UpstreamError("a model has no reachable deployment")

    async def aclose(self) -> None:
        for deployment in self.deployments:
            await deployment.upstream.aclose()


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)

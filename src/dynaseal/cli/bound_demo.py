"""``dynaseal demo --bind``: after the round trip, device-bound keys and child keys.

The device makes its own key pair and gets a key bound to it; every request carries a
DPoP proof signed by that key. It derives, offline, a narrower child key for a
sub-agent; and a copy of the bound key, used without the device's key, is refused
before anything reaches the upstream.
"""

from __future__ import annotations

import openai
from rich.markup import escape

from dynaseal.cli.output import console
from dynaseal.cli.progress import Progress, StepFailed
from dynaseal.client import DeviceClient, DeviceClientError
from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME

STEPS = 3
CHILD_MAX_TOKENS = 64
CHILD_TTL_SECONDS = 60


def show_binding(backend_url: str, prompt: str) -> None:
    """Play a bound device against the running demo services."""
    progress = Progress(STEPS)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": prompt}
    ]
    with DeviceClient(backend_url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD, bind=True) as device:
        with progress.step(
            "calling the gateway with a key bound to this device's own key pair",
            expected=(openai.APIError, DeviceClientError),
        ) as step:
            key = device.current_key()
            reply = device.openai(max_retries=0).chat.completions.create(
                model=key.model, messages=messages
            )
            tokens = reply.usage.total_tokens if reply.usage else "?"
            step.note = f"cnf.jkt {key.jkt}, a fresh DPoP proof per request, {tokens} tokens"

        with progress.step(
            "deriving a child key offline for a sub-agent and calling with it",
            expected=(openai.APIError, DeviceClientError, ValueError),
        ) as step:
            child = device.child_key(max_tokens=CHILD_MAX_TOKENS, ttl=CHILD_TTL_SECONDS)
            child.openai(max_retries=0).chat.completions.create(model=key.model, messages=messages)
            step.note = (
                f"event id {child.event_id}, at most {CHILD_MAX_TOKENS} tokens for "
                f"{CHILD_TTL_SECONDS} s, charged to its parent too"
            )

        with progress.step(
            "using a copy of the bound key without the device's key", expected=(openai.APIError,)
        ) as step:
            thief = openai.OpenAI(api_key=key.token, base_url=key.base_url, max_retries=0)
            try:
                thief.chat.completions.create(model=key.model, messages=messages)
            except openai.AuthenticationError as refused:
                challenge = refused.response.headers.get("www-authenticate", "")
                step.note = f"refused: {refused.status_code}, {challenge}"
            else:
                raise StepFailed("the gateway accepted a copied bound key without a proof")
    console.print(
        "[green]bound keys work:[/green] a copied key is useless without the device's "
        f"private key (the sub-agent's child key is {escape(child.event_id)})."
    )

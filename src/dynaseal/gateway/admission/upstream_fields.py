"""What of a device's request goes upstream: allowed fields only, every length field at
the cap.

Budgets rest on the upstream generating no more than the completion cap the gateway
reserved. Servers name that cap differently and some let one name override another
(llama.cpp's ``n_predict`` wins over ``max_tokens``; a server that reads only
``max_tokens`` ignores a lower ``max_completion_tokens``), so:

* every length field the gateway knows (:data:`LENGTH_FIELDS`), at the top level or one
  level down in an allowed object (Ollama's ``options.num_predict``, TGI's
  ``parameters.max_new_tokens``), is lowered to the cap; fields that lift or multiply
  generation (:data:`NEVER_FORWARDED`) never pass;
* only fields on the tenant's allow-list reach the upstream (:data:`DEFAULT_FIELDS` until
  the tenant sets its own with ``PATCH /v1/user/me {"upstream_fields": [...]}``). Other
  fields are dropped, not refused, so a device on a newer SDK keeps working; the answer
  names them in ``x-dynaseal-dropped-fields``.

The relay still checks what comes back (:mod:`dynaseal.gateway.relay.proxy`): this is the
first line, not the only one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Always forwarded: what the gateway itself reads and rewrites.
ALWAYS = frozenset(
    {"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n"}
)

#: OpenAI chat-completion fields that change neither how much is generated nor its price.
#: Left out on purpose: ``store`` / ``metadata`` (the provider keeps the conversation),
#: ``service_tier`` (another price), ``web_search_options`` (billed per search),
#: ``audio`` / ``modalities`` (audio tokens, priced apart), ``prediction`` (rejected
#: prediction tokens are billed), ``prompt_cache_retention``: a tenant adds them if it wants.
DEFAULT_FIELDS = ALWAYS | {
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "stop",
    "seed",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "user",
    "reasoning_effort",
    "verbosity",
    "safety_identifier",
    "prompt_cache_key",
}

#: Names that bound how many tokens a server generates, lowered to the cap wherever they
#: appear: OpenAI (``max_tokens``, ``max_completion_tokens``, the Responses API's
#: ``max_output_tokens``, which LM Studio and Ollama also read), llama.cpp
#: (``n_predict``), Ollama (``num_predict``, in ``options``), TGI, SGLang and
#: text-generation-webui (``max_new_tokens``), KoboldCpp (``max_length``), Gemini-style
#: (``maxOutputTokens``) and Anthropic's legacy ``max_tokens_to_sample``.
LENGTH_FIELDS = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "n_predict",
        "num_predict",
        "max_new_tokens",
        "max_length",
        "maxOutputTokens",
        "max_tokens_to_sample",
    }
)

#: Never forwarded, even when allowed: text-generation-webui's ``auto_max_new_tokens``
#: raises the cap to the context length; ``best_of`` generates several candidates per
#: choice, which the reservation (per choice) does not cover.
NEVER_FORWARDED = frozenset({"auto_max_new_tokens", "best_of"})
_REWRITTEN = LENGTH_FIELDS | NEVER_FORWARDED

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_MAX_NAMED_DROPS = 16


def valid_field_name(name: str) -> bool:
    return _FIELD_NAME.fullmatch(name) is not None


def allowed_fields(tenant_fields: Iterable[str] | None) -> frozenset[str]:
    """The tenant's allow-list (or the default), plus what the gateway always forwards."""
    return ALWAYS | (frozenset(tenant_fields) if tenant_fields is not None else DEFAULT_FIELDS)


@dataclass(frozen=True, slots=True)
class Forwarded:
    body: dict[str, Any]
    dropped: tuple[str, ...]  # the device's fields that did not pass

    def headers(self) -> dict[str, str]:
        """Name what was dropped (names that are safe in a header; at most 16)."""
        if not self.dropped:
            return {}
        shown = [name for name in self.dropped if valid_field_name(name)][:_MAX_NAMED_DROPS]
        if len(shown) < len(self.dropped):
            shown.append("...")
        return {"x-dynaseal-dropped-fields": ",".join(shown)}


def _at_most(value: Any, cap: int) -> int:
    """The device's own smaller cap if it gave a valid one, else the gateway's."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= cap:
        return value
    return cap


def _capped_object(value: dict[str, Any], cap: int) -> dict[str, Any]:
    return {
        key: _at_most(item, cap) if key in LENGTH_FIELDS else item
        for key, item in value.items()
        if key not in NEVER_FORWARDED
    }


def forward(
    body: dict[str, Any],
    cap: int,
    allowed: frozenset[str],
    cap_fields: Iterable[str] = (),
    cap_field: str | None = "max_tokens",
) -> Forwarded:
    """The body to send upstream for a completion cap of ``cap`` tokens per choice.

    ``cap_fields``: length fields the operator wants set on every request (for an upstream
    that reads a name devices may not send, e.g. ``max_tokens`` on a server that ignores
    ``max_completion_tokens``). ``cap_field``: the endpoint's own length field, set to the
    cap when the device sent none (``None``: an endpoint that generates nothing).
    """
    forwarded: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in body.items():
        if name not in allowed or name in NEVER_FORWARDED:
            dropped.append(name)
        elif name in LENGTH_FIELDS:
            forwarded[name] = _at_most(value, cap)
        elif isinstance(value, dict) and not _REWRITTEN.isdisjoint(value):
            forwarded[name] = _capped_object(value, cap)
        else:
            forwarded[name] = value
    if cap_field is not None and not {cap_field, "max_tokens", "max_completion_tokens"} & set(
        forwarded
    ):
        forwarded[cap_field] = cap
    for name in cap_fields:
        forwarded[name] = _at_most(forwarded.get(name), cap)
    return Forwarded(forwarded, tuple(dropped))

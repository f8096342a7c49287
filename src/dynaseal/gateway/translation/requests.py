"""A Responses API request as the chat completion request that asks the same.

Stateless by nature: a chat upstream keeps nothing, so ``previous_response_id``,
``conversation`` and stored prompts are refused, and ``store`` has no effect.
"""

from __future__ import annotations

from typing import Any

from dynaseal.core.errors import APIError, bad_request
from dynaseal.gateway.endpoints.responses import input_items

#: Sent to the chat upstream under the same name.
_SAME_NAME = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "user",
        "parallel_tool_calls",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)
#: Understood and translated below.
_TRANSLATED = frozenset(
    {
        "input",
        "instructions",
        "max_output_tokens",
        "stream",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
    }
)
#: Accepted, with no effect on a chat upstream (nothing is stored there).
_NO_EFFECT = frozenset(
    {"store", "metadata", "truncation", "include", "stream_options", "background"}
)

_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def _refused(what: str, param: str) -> APIError:
    return bad_request(
        f"{what} is not supported for this model: its upstream has no Responses API, and "
        "the gateway translates only text, images, function tools and structured output "
        "to chat completions.",
        param=param,
    )


def _part(part: Any, param: str) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_image":
        raise _refused("An image given by file_id", param)
    raise _refused(f"A content part of type {kind!r}", param)


def _content(content: Any, role: str, param: str) -> Any:
    """Text as one string (what every chat server takes); a user's images as parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts.", param=param)
    parts = [_part(p, param) for p in content]
    if role == "user" and any(p["type"] == "image_url" for p in parts):
        return parts
    return "".join(p["text"] for p in parts)


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return str(_content(output, "tool", param))
    raise bad_request("a function_call_output's output must be a string.", param=param)


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    for index, item in enumerate(input_items(body)):
        param = f"input[{index}]"
        kind = item.get("type", "message")
        role = item.get("role")
        if kind == "message" and role in ("user", "assistant", "system", "developer"):
            chat_role = "system" if role == "developer" else role
            messages.append(
                {"role": chat_role, "content": _content(item.get("content"), chat_role, param)}
            )
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _output_text(item.get("output"), param),
                }
            )
        elif kind == "reasoning":
            continue  # the model's own earlier state: a chat server has no use for it
        else:
            raise _refused(f"An input item of type {kind!r}", param)
    if not messages:
        raise bad_request("input is required.", param="input")
    return messages


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    translated = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _refused(f"A tool of type {kind!r}", f"tools[{index}]")
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        translated.append({"type": "function", "function": function})
    return translated


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refused("This tool_choice", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    form = text.get("format") if isinstance(text, dict) else None
    if form is None or not isinstance(form, dict) or form.get("type") == "text":
        return None
    if form.get("type") == "json_object":
        return {"type": "json_object"}
    if form.get("type") == "json_schema":
        schema = {k: form[k] for k in ("name", "schema", "strict", "description") if k in form}
        return {"type": "json_schema", "json_schema": schema}
    raise _refused(f"text.format of type {form.get('type')!r}", "text.format")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion request for a Responses request; a 400 for what has none."""
    unknown = sorted(set(body) - _SAME_NAME - _TRANSLATED - _NO_EFFECT)
    if unknown:
        raise _refused(unknown[0], unknown[0])
    chat: dict[str, Any] = {k: body[k] for k in _SAME_NAME if k in body}
    chat["messages"] = _messages(body)
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if (form := _response_format(body.get("text"))) is not None:
        chat["response_format"] = form
    if isinstance(body.get("text"), dict) and body["text"].get("verbosity"):
        chat["verbosity"] = body["text"]["verbosity"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    return chat

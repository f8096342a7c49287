"""``dynaseal chat``: the device side, from a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dynaseal.cli.options import Flag
from dynaseal.cli.output import EXIT_CONFIG, console, fail, text

if TYPE_CHECKING:
    import openai


def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask the model.")],
    backend_url: Annotated[
        str, typer.Option(help="The business backend the device logs in to.")
    ] = "http://127.0.0.1:9000",
    username: Annotated[
        str | None,
        typer.Option(envvar="DYNASEAL_USERNAME", help="Backend user name (or email)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="DYNASEAL_PASSWORD", help="Backend password."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model to ask for.", show_default="the first model of the key"),
    ] = None,
    no_stream: Annotated[
        bool, Flag("--no-stream", help="Print the answer whole, once it is complete.")
    ] = False,
) -> None:
    """Ask the model as a device would: backend login, dynamic key, gateway call.

    Logs in to the backend, gets a dynamic key and calls the gateway directly with the
    OpenAI SDK. The answer streams to stdout as it arrives, then the tokens it used.
    """
    import openai

    from dynaseal.client import DeviceClient, DeviceClientError
    from dynaseal.core.logs import configure_logging

    configure_logging("warning")
    # Never prompt: the command must work without a terminal (CI, scripts).
    if not username:
        fail("no user name: pass --username or set DYNASEAL_USERNAME", EXIT_CONFIG)
    if not password:
        fail("no password: pass --password or set DYNASEAL_PASSWORD", EXIT_CONFIG)
    try:
        with DeviceClient(backend_url, username, password, model=model) as device:
            llm = device.openai()
            key = device.key
            assert key is not None  # openai() fetched one
            usage = _ask(llm, model or key.model, prompt, stream=not no_stream)
    except DeviceClientError as exc:
        fail(f"backend {backend_url}: {exc}")
    except openai.APIStatusError as exc:
        fail(f"gateway refused the request ({exc.status_code}): {_message(exc)}")
    except openai.APIConnectionError as exc:
        fail(f"gateway unreachable: {exc}")
    console.print()
    if usage is not None:
        console.print(
            f"[dim]{usage.total_tokens} tokens ({usage.prompt_tokens} prompt + "
            f"{usage.completion_tokens} completion), event id {key.event_id}[/dim]"
        )


def _ask(llm: openai.OpenAI, model: str, prompt: str, *, stream: bool) -> Any:
    """Print the answer; return its usage when the gateway reported one."""
    messages: Any = [{"role": "user", "content": prompt}]
    if not stream:
        completion = llm.chat.completions.create(model=model, messages=messages)
        text(completion.choices[0].message.content or "")
        return completion.usage
    usage = None
    chunks = llm.chat.completions.create(
        model=model, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            text(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    return usage


def _message(exc: openai.APIStatusError) -> str:
    message = exc.body.get("message") if isinstance(exc.body, dict) else None
    return message if isinstance(message, str) else exc.message

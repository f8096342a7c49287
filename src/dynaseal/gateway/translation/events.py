"""Chat completion chunks as the Responses API's stream of semantic events.

The events follow OpenAI's order: ``response.created`` and ``response.in_progress``;
for the message, ``response.output_item.added``, ``response.content_part.added``, then
``response.output_text.delta`` as text arrives; for each tool call its item and
``response.function_call_arguments.delta``; when the chat stream ends, the ``….done``
events of each item and ``response.completed`` (or ``response.incomplete``) carrying
the whole response and its usage. Every event has its ``sequence_number``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynaseal.gateway.translation import answers

Event = dict[str, Any]


@dataclass(slots=True)
class _Call:
    output_index: int
    item_id: str
    call_id: Any
    name: Any
    arguments: str = ""


@dataclass(slots=True)
class _Message:
    output_index: int
    item_id: str
    text: str = ""


@dataclass
class ChatToResponseEvents:
    """Feed it the chat chunks (:meth:`chunk`), then :meth:`finish`; each returns the
    Responses events to send, in order."""

    request: dict[str, Any]
    response_id: str = field(default_factory=lambda: answers.new_id("resp"))
    _sequence: int = 0
    _started: bool = False
    _model: Any = None
    _outputs: int = 0
    _message: _Message | None = None
    _calls: dict[int, _Call] = field(default_factory=dict)
    _finish_reason: Any = None
    _usage: Any = None

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(self, status: str) -> dict[str, Any]:
        return answers.shell(self.request, self.response_id, self._model, status)

    def _start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self._response("in_progress")),
            self._event("response.in_progress", response=self._response("in_progress")),
        ]

    def _text(self, text: str) -> list[Event]:
        events = []
        if self._message is None:
            self._message = _Message(self._outputs, answers.new_id("msg"))
            self._outputs += 1
            item = answers.message_item(self._message.item_id, [], "in_progress")
            events.append(
                self._event(
                    "response.output_item.added", output_index=self._message.output_index, item=item
                )
            )
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=self._message.item_id,
                    output_index=self._message.output_index,
                    content_index=0,
                    part=answers.text_part(""),
                )
            )
        self._message.text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._message.item_id,
                output_index=self._message.output_index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call(self, delta: dict[str, Any]) -> list[Event]:
        given = delta.get("index")
        index = given if isinstance(given, int) else len(self._calls)
        function = delta.get("function") or {}
        events = []
        call = self._calls.get(index)
        if call is None:
            call = _Call(self._outputs, answers.new_id("fc"), delta.get("id"), function.get("name"))
            self._calls[index] = call
            self._outputs += 1
            item = answers.call_item(call.item_id, call.call_id, call.name, "", "in_progress")
            events.append(
                self._event("response.output_item.added", output_index=call.output_index, item=item)
            )
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.arguments += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    delta=arguments,
                )
            )
        return events

    def chunk(self, chunk: dict[str, Any]) -> list[Event]:
        """The events for one chat completion chunk."""
        self._model = self._model or chunk.get("model")
        events = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        if isinstance(chunk.get("error"), dict):
            error = chunk["error"]
            message = str(error.get("message") or "The upstream failed.")
            code = error.get("code")
            nested = {"type": error.get("type"), "code": code, "message": message, "param": None}
            events.append(
                self._event("error", code=code, message=message, param=None, error=nested)
            )
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str) and delta["content"]:
            events += self._text(delta["content"])
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._call(call)
        if choice.get("finish_reason"):
            self._finish_reason = choice["finish_reason"]
        return events

    def _done_items(self) -> tuple[list[Event], list[dict[str, Any]]]:
        events: list[Event] = []
        output: list[tuple[int, dict[str, Any]]] = []
        message = self._message
        if message is not None:
            part = answers.text_part(message.text)
            item = answers.message_item(message.item_id, [part], "completed")
            place = {"item_id": message.item_id, "output_index": message.output_index}
            events.append(
                self._event(
                    "response.output_text.done",
                    **place,
                    content_index=0,
                    text=message.text,
                    logprobs=[],
                )
            )
            events.append(
                self._event("response.content_part.done", **place, content_index=0, part=part)
            )
            events.append(
                self._event(
                    "response.output_item.done", output_index=message.output_index, item=item
                )
            )
            output.append((message.output_index, item))
        for call in self._calls.values():
            item = answers.call_item(
                call.item_id, call.call_id, call.name, call.arguments, "completed"
            )
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.item_id,
                    output_index=call.output_index,
                    arguments=call.arguments,
                )
            )
            events.append(
                self._event("response.output_item.done", output_index=call.output_index, item=item)
            )
            output.append((call.output_index, item))
        return events, [item for _, item in sorted(output, key=lambda pair: pair[0])]

    def finish(self) -> list[Event]:
        """The closing events, once the chat stream ended."""
        events = self._start()
        done, output = self._done_items()
        status, incomplete = answers.status_of(self._finish_reason)
        response = self._response(status)
        response["output"] = output
        response["incomplete_details"] = incomplete
        response["usage"] = answers.usage(self._usage)
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return [*events, *done, self._event(kind, response=response)]

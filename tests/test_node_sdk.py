"""The official Node SDK (the ``openai`` npm package) as the device: the Responses API,
streamed and not, against an upstream that has it and one that has only chat
completions (translated by the gateway)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.node import run_node
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, mint
from support.upstream import FakeUpstream

SCRIPT = """
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.GATEWAY + "/v1", apiKey: process.env.KEY, maxRetries: 0,
});
const model = process.env.MODEL;
const whole = await client.responses.create({ model, input: "Say hello", max_output_tokens: 50 });
const stream = await client.responses.create({ model, input: "Say hello", stream: true });
const kinds = [];
let streamed = "";
let usage = null;
for await (const event of stream) {
  kinds.push(event.type);
  if (event.type === "response.output_text.delta") streamed += event.delta;
  if (event.type === "response.completed") usage = event.response.usage;
}
let refused = null;
try {
  await client.responses.create({ model, input: "Say hello", max_output_tokens: 100000 });
} catch (error) {
  refused = { status: error.status, code: error.code };
}
const text = whole.output_text;
console.log(JSON.stringify({ text, usage: whole.usage, streamed, kinds, final: usage, refused }));
"""


@pytest.mark.parametrize("kind", ["native", "translated"])
def test_node_sdk_responses(
    kind: str, request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path: Path
) -> None:
    if kind == "translated":
        upstream.script.endpoints = frozenset({"chat"})
    gateway: ServerThread = request.getfixturevalue(
        "gateway" if kind == "native" else "chat_only_gateway"
    )
    out = run_node(
        SCRIPT, tmp_path, {"GATEWAY": gateway.url, "KEY": mint(max_tokens=500), "MODEL": DEMO_MODEL}
    )
    result = json.loads(out)
    assert result["text"] == result["streamed"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert result["usage"]["output_tokens"] == 8
    assert result["kinds"][0] == "response.created" and result["kinds"][-1] == "response.completed"
    assert result["final"]["total_tokens"] == 19
    assert result["refused"] == {"status": 429, "code": "insufficient_quota"}  # budget enforced
    path = "/v1/responses" if kind == "native" else "/v1/chat/completions"
    assert upstream.paths == [path, path]

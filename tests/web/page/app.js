// The device in a web page: bundled with the official openai package by esbuild at test
// time (tests/test_browser_device.py). The backend's address comes in the page's query.
import OpenAI from "openai";

const backend = new URLSearchParams(location.search).get("backend");
const status = document.getElementById("status");
const answer = document.getElementById("answer");
window.arrivals = [];

async function main() {
  status.textContent = "logging in";
  const login = await fetch(`${backend}/v1/user/login`, {
    method: "POST",
    body: new URLSearchParams({ username: "client1", password: "client1" }),
  });
  const { access_token } = await login.json();
  const key = await (
    await fetch(`${backend}/v1/key/create`, {
      method: "POST",
      headers: { Authorization: `Bearer ${access_token}` },
    })
  ).json();

  // A dynamic key is made for devices: short-lived, budgeted, revocable.
  const client = new OpenAI({
    baseURL: key.base_url,
    apiKey: key.token,
    dangerouslyAllowBrowser: true,
    maxRetries: 0,
  });
  status.textContent = "streaming";
  const { data: stream, response } = await client.chat.completions
    .create({
      model: key.model,
      messages: [{ role: "user", content: "Hello from a web page" }],
      stream: true,
    })
    .withResponse();
  document.getElementById("request-id").textContent = response.headers.get("x-request-id");
  for await (const chunk of stream) {
    const text = chunk.choices[0]?.delta?.content ?? "";
    if (text) {
      window.arrivals.push(performance.now());
      answer.textContent += text;
    }
  }
  const events = await client.responses.create({ model: key.model, input: "Hi", stream: true });
  for await (const event of events) {
    if (event.type === "response.output_text.delta") {
      document.getElementById("response-text").textContent += event.delta;
    }
  }
  status.textContent = "done";
}

main().catch((error) => {
  status.textContent = `failed: ${error}`;
});

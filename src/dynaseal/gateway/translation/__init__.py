"""The Responses API for upstreams that only have chat completions.

Many OpenAI-compatible servers (vLLM, Ollama, llama.cpp, DeepSeek …) have no
``/responses``. For a deployment that serves only ``chat``, the router translates the
common subset — text, images as input, function tools, structured output, streaming —
and refuses the rest with a 400 that names the field:

* :mod:`.requests` - a Responses request as a chat completion request
* :mod:`.answers`  - a chat completion as a Response object (and the parts both share)
* :mod:`.events`   - chat completion chunks as the Responses stream's semantic events
* :mod:`.reply`    - the upstream's reply, translated as it is read
"""

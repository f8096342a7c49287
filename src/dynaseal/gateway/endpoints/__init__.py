"""The OpenAI endpoints devices call, each described once (:class:`~.base.Endpoint`):
how its body is checked, what it asks of the key's budgets, what goes upstream, how its
answer is read.

* :mod:`.chat`        - ``POST /v1/chat/completions``
* :mod:`.responses`   - ``POST /v1/responses`` (semantic stream events)
* :mod:`.embeddings`  - ``POST /v1/embeddings`` (input tokens only)
* :mod:`.completions` - ``POST /v1/completions`` (legacy text completions)
"""

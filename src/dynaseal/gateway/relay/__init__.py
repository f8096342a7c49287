"""Relaying an admitted request to the upstream model server and its answer back.

* :mod:`.proxy`          - forward, relay (JSON or SSE), settle exactly once
* :mod:`.upstream`       - the OpenAI-compatible upstream over HTTP
* :mod:`.offline`        - the built-in responder when no upstream is configured
* :mod:`.sse`            - server-sent events framing and parsing
* :mod:`.transcript`     - what the upstream said (text, usage), read as it passes
* :mod:`.token_estimate` - token counts when the upstream gives none
"""

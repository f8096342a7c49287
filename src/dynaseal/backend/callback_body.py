"""A callback's body as the gateway signed it: a ``usage.batch`` arrives gzip-compressed
(``content-encoding: gzip``), and its signature covers the JSON inside. Decompressed
under the same size limit as an uncompressed body, so a small bomb stays small."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from dynaseal.core.errors import APIError, bad_request

_GZIP = 16 + zlib.MAX_WBITS  # zlib's gzip framing


def decoded(body: bytes, headers: Mapping[str, str], limit: int) -> bytes:
    """``body`` without its content coding; 415 for a coding other than gzip, 413 past
    ``limit`` bytes once decompressed, 400 for a broken gzip stream."""
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding == "identity":
        return body
    if coding != "gzip":
        raise APIError(
            415,
            f"content-encoding {coding[:32]!r} is not supported; send gzip or none.",
            code="unsupported_content_encoding",
        )
    inflate = zlib.decompressobj(_GZIP)
    try:
        plain = inflate.decompress(body, limit + 1)
    except zlib.error:
        raise bad_request("the gzip-compressed body is broken.") from None
    if len(plain) > limit or inflate.unconsumed_tail:
        message = f"the callback is larger than {limit} bytes uncompressed."
        raise APIError(413, message, code="request_too_large")
    if not inflate.eof:
        raise bad_request("the gzip-compressed body is cut short.")
    return plain

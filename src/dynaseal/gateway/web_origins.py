"""Web origins as browsers send them (``Origin: https://app.example``), so a tenant's
list of allowed origins compares equal to what arrives: lower-case scheme and host, the
port only when it is not the scheme's default, nothing else."""

from __future__ import annotations

from typing import Annotated

import yarl
from pydantic import AfterValidator, Field


def web_origin(value: str) -> str:
    try:
        url = yarl.URL(value.strip())
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not an origin like https://app.example") from None
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or url.user is not None
        or url.path not in ("", "/")
        or url.query_string
        or url.fragment
    ):
        raise ValueError(f"{value!r} is not an origin like https://app.example")
    default = {"http": 80, "https": 443}[url.scheme]
    port = f":{url.explicit_port}" if url.explicit_port not in (None, default) else ""
    return f"{url.scheme}://{url.host.lower()}{port}"


WebOrigin = Annotated[str, Field(max_length=300), AfterValidator(web_origin)]

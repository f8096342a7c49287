"""The one exception the device client raises."""

from __future__ import annotations

import httpx


class DeviceClientError(Exception):
    """The backend refused (``status`` is its HTTP status) or could not be reached
    (``status`` is ``None``)."""

    def __init__(self, status: int | None, message: str, code: str | None = None) -> None:
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.code = code


def error_from_response(response: httpx.Response) -> DeviceClientError:
    """Read the OpenAI-format ``{"error": {...}}`` body, or make do with the status."""
    try:
        error = response.json()["error"]
        return DeviceClientError(response.status_code, str(error["message"]), error.get("code"))
    except (ValueError, KeyError, TypeError):
        return DeviceClientError(response.status_code, response.reason_phrase or "error")

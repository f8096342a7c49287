"""The columns of a web-console login, shared by the gateway's and the backend's tables.

A row per logged-in browser: the cookie holds a random token, the row only its SHA-256,
so a copy of the database opens no session. Logging out deletes the row, which ends the
session on every replica at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dynaseal.storage.types import UTCDateTime, utcnow


class ConsoleSessionColumns:
    """Mixed into each service's ``ConsoleSession`` table."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    subject: Mapped[str] = mapped_column(String(64))  # tenant id (gateway) / user id (backend)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

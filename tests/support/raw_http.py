"""HTTP/1.1 spoken by hand, for what an HTTP client library would not let a test do:
stream a huge chunked body while watching for an early answer, or stop reading a stream."""

from __future__ import annotations

import json
import select
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


def connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class EarlyAnswer:
    status: int | None  # None: no answer before the body was sent or the connection died
    body: dict[str, Any] | None
    sent: int  # body bytes the server let us send


def _answer(raw: bytes) -> tuple[int, dict[str, Any] | None]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def send_chunked(
    base_url: str,
    path: str,
    total: int,
    *,
    method: str = "POST",
    chunk: int = 64 * 1024,
    headers: dict[str, str] | None = None,
    past_the_answer: bool = False,
) -> EarlyAnswer:
    """Send up to ``total`` bytes as a chunked body, stopping at the first byte of an answer
    (or, ``past_the_answer``, only when the server drops the connection); then read
    whatever answer came."""
    sock = connect(base_url)
    received = b""
    sent = 0
    piece = f"{chunk:x}\r\n".encode() + b"x" * chunk + b"\r\n"
    try:
        sock.sendall(
            request_head(
                method,
                path,
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
                | (headers or {}),
            )
        )
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and not past_the_answer:
                break
            try:
                sock.sendall(piece)
            except OSError:  # reset or broken pipe: the server stopped reading
                break
            sent += chunk
        sock.settimeout(10)
        try:
            while True:  # (data the server sent before it closed is still readable)
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                if b"\r\n\r\n" in received and _complete(received):
                    break
        except OSError:
            pass
    finally:
        sock.close()
    if not received:
        return EarlyAnswer(None, None, sent)
    status, body = _answer(received)
    return EarlyAnswer(status, body, sent)


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False

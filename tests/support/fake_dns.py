"""A name server the test controls, in place of the system resolver: it answers
``socket.getaddrinfo`` for the names it was given and passes every other name on.

It sees what the system resolver would see: a ``str`` host is encoded the way CPython's
socket module encodes it before asking (IDNA 2003, so ``straße`` becomes ``strasse``), a
``bytes`` host is asked as it is. Every answer has TTL 0: a name may answer differently
on each lookup, as a rebinding attacker's name server does.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

_system_getaddrinfo = socket.getaddrinfo


class FakeDNS:
    def __init__(self) -> None:
        self._answers: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        #: Every lookup of one of our names, in order, as the resolver saw the name.
        self.lookups: list[str] = []

    def answer(self, name: str, *addresses: str) -> None:
        """Answer ``name`` with each address in turn, then with the last one for ever;
        with no address the name does not exist. ``name`` is in its ASCII (wire) form."""
        with self._lock:
            self._answers[name.lower()] = list(addresses)

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        if isinstance(host, str):
            try:
                name = host.encode("idna").decode("ascii")
            except UnicodeError:
                name = host
        else:
            name = bytes(host).decode("ascii", "replace") if host is not None else ""
        name = name.lower().rstrip(".")
        with self._lock:
            answers = self._answers.get(name)
            if answers is None:
                return _system_getaddrinfo(host, port, family, type, proto, flags)
            self.lookups.append(name)
            if not answers:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            address = answers.pop(0) if len(answers) > 1 else answers[0]
        number = int(port or 0)
        if ipaddress.ip_address(address).version == 6:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, number, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, number))]

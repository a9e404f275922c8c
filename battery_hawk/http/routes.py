"""The route table of the status server: requests, responses and path patterns (pure).

A pattern is a path whose segments are literal or ``{name}`` (one whole segment), e.g.
``/api/devices/{device_id}/reset-breaker``; the matched names arrive in
``Request.params``. A handler returns a Response, or an awaitable of one.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = [
    "HTML",
    "JSON",
    "TEXT",
    "Handler",
    "Request",
    "Response",
    "Route",
    "RouteTable",
    "is_admin",
    "json_response",
    "text_response",
]

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"

Response = tuple[HTTPStatus, str, bytes]
"""(status, content type, body)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request; header names are lower case, ``client`` is the peer's address."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response | Awaitable[Response]]


def json_response(doc: object, status: HTTPStatus = HTTPStatus.OK) -> Response:
    body = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode() + b"\n"
    return status, JSON, body


def text_response(status: HTTPStatus, message: str | None = None) -> Response:
    return status, TEXT, f"{message or status.phrase}\n".encode()


def is_admin(request: Request, token: str | None) -> bool:
    """True for a loopback client, or one that sends ``Authorization: Bearer <token>``."""
    if request.client is not None:
        try:
            if ipaddress.ip_address(request.client).is_loopback:
                return True
        except ValueError:
            pass
    if not token:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(),
                                                                 token.encode())


@dataclass(frozen=True, slots=True)
class Route:
    """One pattern and a handler per method; ``admin`` routes need is_admin."""

    segments: tuple[str, ...]
    handlers: dict[str, Handler] = field(default_factory=dict)
    admin: frozenset[str] = frozenset()

    def match(self, parts: tuple[str, ...]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params

    @property
    def allow(self) -> str:
        methods = set(self.handlers)
        if "GET" in methods:
            methods.add("HEAD")
        order = ("GET", "HEAD", "POST", "PUT", "DELETE")
        return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else 9, m)))


def _split(path: str) -> tuple[str, ...]:
    stripped = path.strip("/")
    return tuple(stripped.split("/")) if stripped else ()


class RouteTable:
    """Routes in the order added; the first pattern that matches a path wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, admin: bool = False) -> None:
        """Serve ``method`` on ``pattern``; GET also answers HEAD (without the body)."""
        segments = _split(pattern)
        method = method.upper()
        for index, route in enumerate(self._routes):
            if route.segments == segments:
                admin_set = route.admin | {method} if admin else route.admin - {method}
                self._routes[index] = Route(segments, {**route.handlers, method: handler},
                                            frozenset(admin_set))
                return
        self._routes.append(Route(segments, {method: handler},
                                  frozenset({method}) if admin else frozenset()))

    def find(self, path: str) -> tuple[Route, dict[str, str]] | None:
        parts = _split(path)
        for route in self._routes:
            params = route.match(parts)
            if params is not None:
                return route, params
        return None

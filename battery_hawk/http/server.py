"""A small HTTP/1.1 server on asyncio streams: /metrics, /health, /api/devices and `/`.

One request per connection (every response says ``Connection: close``), GET and HEAD only,
request heads bounded in size, line count and time; a request body is never read. That is
all a Prometheus scraper, a health probe and a browser need, and leaves nothing for a
garbage request to grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from urllib.parse import urlsplit

from battery_hawk.http.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from battery_hawk.http.metrics import Metrics
from battery_hawk.http.page import render_page
from battery_hawk.http.status import (
    Overall,
    StatusProvider,
    device_document,
    health_document,
)

__all__ = ["HttpServer"]

_LOG = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8192
MAX_HEADER_LINES = 64
_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"

Response = tuple[HTTPStatus, str, bytes]


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


def _json(doc: object, status: HTTPStatus = HTTPStatus.OK) -> Response:
    body = json.dumps(doc, ensure_ascii=False, allow_nan=False).encode() + b"\n"
    return status, _JSON, body


def _text(status: HTTPStatus, message: str | None = None) -> Response:
    return status, _TEXT, f"{message or status.phrase}\n".encode()


class HttpServer:
    """Serves metrics and status; ``async with HttpServer(...) as srv`` and ``srv.port``."""

    def __init__(
        self,
        listen: str,
        port: int,
        metrics: Metrics,
        provider: StatusProvider,
        *,
        request_timeout: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self._listen = listen
        self._port = port
        self._metrics = metrics
        self._provider = provider
        self._timeout = request_timeout
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._provider_failing = False
        self._routes: dict[str, Callable[[], Response]] = {
            "/": self._page,
            "/index.html": self._page,
            "/metrics": self._render_metrics,
            "/health": self._health,
            "/api/devices": self._devices,
        }

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._listen, self._port, limit=MAX_HEAD_BYTES
        )
        _LOG.info("HTTP status server on http://%s:%s/", self._listen, self.port)

    async def stop(self) -> None:
        """Stop listening, cancel requests still in progress and wait for them."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- connection handling -------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            if len(self._handlers) > self._max_connections:
                await self._respond(writer, _text(HTTPStatus.SERVICE_UNAVAILABLE), head=False)
                return
            try:
                async with asyncio.timeout(self._timeout):
                    method, path = await self._read_head(reader)
            except _BadRequest as exc:
                await self._respond(writer, _text(exc.status), head=False)
                return
            except TimeoutError:
                await self._respond(writer, _text(HTTPStatus.REQUEST_TIMEOUT), head=False)
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away mid-request
            await self._respond(writer, self._dispatch(method, path), head=method == "HEAD")
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # stop() cancels unfinished requests; end quietly, because asyncio (3.11) reports
            # a cancelled client_connected_cb task as an unhandled error.
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        total = 0
        lines: list[bytes] = []
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError) as exc:  # longer than the limit
                raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from exc
            if not line:
                raise asyncio.IncompleteReadError(b"", None)
            total += len(line)
            if total > MAX_HEAD_BYTES or len(lines) > MAX_HEADER_LINES:
                raise _BadRequest(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
            if not line.strip():
                if lines:
                    break
                continue  # RFC 9112: ignore empty lines before the request line
            lines.append(line)
        return self._parse_request_line(lines[0])

    @staticmethod
    def _parse_request_line(line: bytes) -> tuple[str, str]:
        try:
            text = line.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST) from exc
        parts = text.split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
            raise _BadRequest(HTTPStatus.BAD_REQUEST)
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise _BadRequest(
                HTTPStatus.HTTP_VERSION_NOT_SUPPORTED
                if version.startswith("HTTP/")
                else HTTPStatus.BAD_REQUEST
            )
        if not (target.startswith("/") or target.startswith("http://")):
            raise _BadRequest(HTTPStatus.BAD_REQUEST)
        try:
            path = urlsplit(target).path or "/"
        except ValueError as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST) from exc
        return method, path

    def _dispatch(self, method: str, path: str) -> Response:
        route = self._routes.get(path.rstrip("/") or "/")
        if route is None:
            return _text(HTTPStatus.NOT_FOUND)
        if method not in ("GET", "HEAD"):
            return _text(HTTPStatus.METHOD_NOT_ALLOWED)
        try:
            response = route()
        except Exception:
            if not self._provider_failing:
                _LOG.exception("status provider failed while serving %s", path)
            self._provider_failing = True
            return _text(HTTPStatus.INTERNAL_SERVER_ERROR)
        if self._provider_failing:
            _LOG.info("status provider answers again")
            self._provider_failing = False
        return response

    async def _respond(
        self, writer: asyncio.StreamWriter, response: Response, *, head: bool
    ) -> None:
        status, content_type, body = response
        headers = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "X-Content-Type-Options: nosniff",
            "Connection: close",
        ]
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            headers.append("Allow: GET, HEAD")
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("ascii"))
        if not head:
            writer.write(body)
        async with asyncio.timeout(self._timeout):
            await writer.drain()

    # --- endpoints -------------------------------------------------------------------

    def _render_metrics(self) -> Response:
        return HTTPStatus.OK, METRICS_CONTENT_TYPE, self._metrics.render()

    def _health(self) -> Response:
        health, devices = self._provider.health(), self._provider.devices()
        doc = health_document(health, devices)
        failing = doc["status"] == Overall.FAILING
        return _json(doc, HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK)

    def _devices(self) -> Response:
        return _json([device_document(d) for d in self._provider.devices()])

    def _page(self) -> Response:
        body = render_page(self._provider.health(), self._provider.devices())
        return HTTPStatus.OK, _HTML, body

"""A small HTTP/1.1 server on asyncio streams: /metrics, /health, /api/devices and `/`.

Requests are parsed by h11 (a maintained sans-I/O HTTP/1.1 parser); this module keeps the
asyncio transport and the bounds. One request per connection (every response says
``Connection: close``); a request head is bounded in bytes, header lines and time, a body
in bytes. That is all a Prometheus scraper, a health probe, a browser and a small admin
call need, and leaves nothing for a garbage request to grow. Routes live in a RouteTable;
``add_route`` adds one.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from http import HTTPStatus
from types import TracebackType
from urllib.parse import unquote, urlsplit

import h11

from battery_hawk.http.metrics import Metrics
from battery_hawk.http.page import render_page
from battery_hawk.http.routes import (
    HTML,
    Handler,
    Request,
    Response,
    RouteTable,
    is_admin,
    json_response,
    text_response,
)
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
MAX_BODY_BYTES = 65536
_CHUNK = 4096


class _Refuse(Exception):
    """End the request with this status (the request was bad or too big)."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class HttpServer:
    """Serves metrics and status; ``async with HttpServer(...) as srv`` and ``srv.port``.

    ``admin_token``: a route added with ``admin=True`` answers a loopback client, or one
    sending ``Authorization: Bearer <admin_token>``; anyone else gets 403.
    """

    def __init__(
        self,
        listen: str,
        port: int,
        metrics: Metrics,
        provider: StatusProvider,
        *,
        request_timeout: float = 10.0,
        max_connections: int = 64,
        admin_token: str | None = None,
    ) -> None:
        self._listen = listen
        self._port = port
        self._metrics = metrics
        self._provider = provider
        self._timeout = request_timeout
        self._max_connections = max_connections
        self._admin_token = admin_token
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._provider_failing = False
        self.routes = RouteTable()
        for path in ("/", "/index.html"):
            self.add_route("GET", path, self._page)
        self.add_route("GET", "/metrics", self._render_metrics)
        self.add_route("GET", "/health", self._health)
        self.add_route("GET", "/api/devices", self._devices)

    def add_route(self, method: str, pattern: str, handler: Handler, *,
                  admin: bool = False) -> None:
        """Serve ``method`` on ``pattern`` (``{name}`` segments become Request.params)."""
        self.routes.add(method, pattern, handler, admin=admin)

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the HTTP server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._listen, self._port)
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
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        try:
            if len(self._handlers) > self._max_connections:
                await self._respond(writer, conn, text_response(HTTPStatus.SERVICE_UNAVAILABLE))
                return
            peer = writer.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else None
            try:
                async with asyncio.timeout(self._timeout):
                    request = await self._read_request(reader, conn, client)
            except _Refuse as exc:
                await self._respond(writer, conn, text_response(exc.status))
                return
            except TimeoutError:
                await self._respond(writer, conn, text_response(HTTPStatus.REQUEST_TIMEOUT))
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away mid-request
            response, extra = await self._dispatch(request)
            await self._respond(writer, conn, response, head=request.method == "HEAD",
                                extra=extra)
        except (ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # stop() cancels unfinished requests; end quietly, because asyncio (3.11) reports
            # a cancelled client_connected_cb task as an unhandled error.
            pass
        finally:
            await self._close(writer)
            if task is not None:
                self._handlers.discard(task)

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close the connection; one whose client does not read what is left to send is
        dropped after the request timeout (a graceful close would wait for it forever and
        hold a connection slot: 64 such clients would shut everyone out)."""
        writer.close()
        try:
            async with asyncio.timeout(self._timeout):
                await writer.wait_closed()
        except (TimeoutError, asyncio.CancelledError):
            writer.transport.abort()  # stop() cancels too: end quietly, as above
        except (ConnectionError, OSError):
            return  # the client's side of the close is not ours to report

    async def _next_event(self, reader: asyncio.StreamReader, conn: h11.Connection,
                          counted: list[int]) -> object:
        """The next h11 event, reading more bytes as needed.

        counted holds the bytes and the line ends read so far; a request with too many
        header lines is refused as such even when h11 finds another fault first.
        """
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if counted[1] > MAX_HEADER_LINES + 1:
                    raise _Refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from exc
                raise _Refuse(HTTPStatus(exc.error_status_hint)) from exc
            if event is not h11.NEED_DATA:
                return event
            data = await reader.read(_CHUNK)
            if not data:
                raise asyncio.IncompleteReadError(b"", None)
            counted[0] += len(data)
            counted[1] += data.count(b"\n")
            conn.receive_data(data)

    async def _read_request(self, reader: asyncio.StreamReader, conn: h11.Connection,
                            client: str | None) -> Request:
        head = [0, 0]
        event = await self._next_event(reader, conn, head)
        if isinstance(event, h11.ConnectionClosed):
            raise asyncio.IncompleteReadError(b"", None)
        if not isinstance(event, h11.Request):
            raise _Refuse(HTTPStatus.BAD_REQUEST)
        if event.http_version not in (b"1.0", b"1.1"):
            raise _Refuse(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED)
        # h11 bounds what it buffers; a head that came in one piece is bounded here
        body_start = head[0] - len(conn.trailing_data[0])
        if body_start > MAX_HEAD_BYTES or len(event.headers) > MAX_HEADER_LINES:
            raise _Refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        headers = {name.decode("latin-1"): value.decode("latin-1")
                   for name, value in event.headers}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise _Refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = bytearray()
        while True:
            part = await self._next_event(reader, conn, [0, 0])
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > MAX_BODY_BYTES:
                    raise _Refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                raise asyncio.IncompleteReadError(b"", None)
        target = event.target.decode("ascii", "replace")
        if not (target.startswith("/") or target.startswith("http://")):
            raise _Refuse(HTTPStatus.BAD_REQUEST)
        try:
            parts = urlsplit(target)
        except ValueError as exc:
            raise _Refuse(HTTPStatus.BAD_REQUEST) from exc
        return Request(method=event.method.decode("ascii"), path=unquote(parts.path) or "/",
                       query=parts.query, headers=headers, body=bytes(body), client=client)

    async def _dispatch(self, request: Request) -> tuple[Response, list[tuple[str, str]]]:
        """The response, and headers it needs beyond the usual ones."""
        found = self.routes.find(request.path)
        if found is None:
            return text_response(HTTPStatus.NOT_FOUND), []
        route, params = found
        method = "GET" if request.method == "HEAD" else request.method
        handler = route.handlers.get(method)
        if handler is None:
            return text_response(HTTPStatus.METHOD_NOT_ALLOWED), [("Allow", route.allow)]
        if method in route.admin and not is_admin(request, self._admin_token):
            return text_response(HTTPStatus.FORBIDDEN,
                                 "only from this host, or with http.admin_token"), []
        return await self._call(handler, request, params), []

    async def _call(self, handler: Handler, request: Request,
                    params: dict[str, str]) -> Response:
        try:
            result = handler(Request(request.method, request.path, request.query,
                                     request.headers, request.body, request.client, params))
            response = await result if inspect.isawaitable(result) else result
        except Exception:
            if not self._provider_failing:
                _LOG.exception("status provider failed while serving %s", request.path)
            self._provider_failing = True
            return text_response(HTTPStatus.INTERNAL_SERVER_ERROR)
        if self._provider_failing:
            _LOG.info("status provider answers again")
            self._provider_failing = False
        return response

    async def _respond(self, writer: asyncio.StreamWriter, conn: h11.Connection,
                       response: Response, *, head: bool = False,
                       extra: list[tuple[str, str]] | None = None) -> None:
        status, content_type, body = response
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
        ]
        headers += extra or []
        try:
            data = conn.send(h11.Response(status_code=status.value, headers=headers,
                                          reason=status.phrase.encode()))
            if not head and body:
                data = (data or b"") + (conn.send(h11.Data(data=body)) or b"")
            data = (data or b"") + (conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:
            return  # the connection is past answering (the client closed it)
        writer.write(data)
        async with asyncio.timeout(self._timeout):
            await writer.drain()

    # --- endpoints -------------------------------------------------------------------

    def _render_metrics(self, _request: Request) -> Response:
        return HTTPStatus.OK, self._metrics.content_type, self._metrics.render()

    def _health(self, _request: Request) -> Response:
        health, devices = self._provider.health(), self._provider.devices()
        doc = health_document(health, devices)
        failing = doc["status"] == Overall.FAILING
        return json_response(doc, HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK)

    def _devices(self, _request: Request) -> Response:
        return json_response([device_document(d) for d in self._provider.devices()])

    def _page(self, _request: Request) -> Response:
        body = render_page(self._provider.health(), self._provider.devices())
        return HTTPStatus.OK, HTML, body

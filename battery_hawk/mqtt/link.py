"""One connection to the broker: a thin owner of one aiomqtt.Client.

This file and interface.py's callers never see ``aiomqtt.MqttError``: every failure
leaves as :class:`LinkError`. A fresh ``Link`` (so a fresh client) is made for every
connection attempt; reusing a paho client makes it resend its own unacknowledged
messages on reconnect, which duplicates what the queue resends anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

from battery_hawk.errors import BatteryHawkError

from .backoff import ReconnectionConfig
from .settings import BrokerSettings

__all__ = ["Link", "LinkError"]

# paho and aiomqtt log every dropped socket (and, with 100 publishes in flight,
# "There are N pending publish calls"). The interface logs the outcome itself,
# once per outage, so their chatter goes to a logger of its own that only lets
# critical records through.
_PAHO_LOGGER = logging.getLogger("battery_hawk.mqtt.paho")


class _Client(aiomqtt.Client):
    """aiomqtt.Client with three gaps closed.

    aiomqtt 2 ignores a disconnect that comes before the CONNACK (a TLS handshake the
    broker rejects, a broker dying while we connect), so the attempt only ends when
    the connection timeout expires; here it fails at once.

    aiomqtt 2 also registers the socket writer through ``call_soon_threadsafe``; when the
    broker dies just after a publish, paho closes the socket before that callback
    runs and asyncio logs "Exception in callback ... Bad file descriptor" (or, if the
    descriptor number was reused, watches someone else's socket). This version checks
    that the socket is still the client's open socket when the callback runs.

    Finally, aiomqtt 2 runs paho's blocking ``connect()`` in an executor thread, and
    cancelling ``__aenter__`` does not stop that thread: it can finish connecting after
    the attempt was given up, leaving a stray connection under our client id that the
    broker drops (with an unretrieved "Unexpected disconnection") when our next
    connection arrives. :meth:`abandon` waits for that thread and closes what it opened.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # _abandoned and _connect_started are shared with the executor thread and
        # guarded by _attempt_lock; _connect_finished is only touched in the loop.
        self._attempt_lock = threading.Lock()
        self._abandoned = False
        self._connect_started = False
        self._connect_finished: asyncio.Future[None] = self._loop.create_future()

    def _client_connect(self) -> None:
        # Executor thread. Either abandon() sees the thread started (and waits for it),
        # or the thread sees the client abandoned and never connects.
        with self._attempt_lock:
            if self._abandoned:
                raise OSError("connection attempt abandoned")
            self._connect_started = True
        try:
            super()._client_connect()
        finally:
            try:
                # Queued after paho's socket-open callbacks (same thread, FIFO), so
                # the reader and the misc task exist when _on_connect_finished runs.
                self._loop.call_soon_threadsafe(self._on_connect_finished)
            except RuntimeError:  # the loop is closed: nobody can use the socket
                self._close_socket()

    def _on_connect_finished(self) -> None:
        if not self._connect_finished.done():
            self._connect_finished.set_result(None)
        if self._abandoned:  # given up while connecting: close what the thread opened
            self._release()

    async def abandon(self, timeout: float) -> None:
        """Close the socket, end aiomqtt's helper task, read the errors; wait (bounded)
        for a connect still running in its thread, which must not outlive the client.

        aiomqtt 2 has no public way to do this after a failed or dead connection, so
        this reaches into its (stable across 2.x) internals, defensively.
        """
        with self._attempt_lock:
            self._abandoned = True
            started = self._connect_started
        if started and not self._connect_finished.done():
            # Not awaited directly: a second cancel must not cancel the future; if we
            # give up waiting, _on_connect_finished still closes the late socket.
            await asyncio.wait({self._connect_finished}, timeout=timeout)
        self._release()
        misc = getattr(self, "_misc_task", None)
        if isinstance(misc, asyncio.Task) and not misc.done():
            await asyncio.wait({misc}, timeout=1.0)

    def _close_socket(self) -> None:
        paho = getattr(self, "_client", None)
        sock_close = getattr(paho, "_sock_close", None)
        if callable(sock_close):
            with contextlib.suppress(Exception):  # paho closes the socket regardless
                sock_close()

    def _release(self) -> None:
        self._close_socket()
        # Mark the exception of a link that died as retrieved, or asyncio logs
        # "Future exception was never retrieved" when the client is collected.
        for name in ("_disconnected", "_connected"):
            future = getattr(self, name, None)
            if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
                future.exception()
        misc = getattr(self, "_misc_task", None)
        if isinstance(misc, asyncio.Task) and not misc.done():
            misc.cancel()

    def _on_socket_register_write(
        self, client: mqtt.Client, userdata: Any, sock: Any
    ) -> None:
        def on_writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def register() -> None:
            current = client.socket()
            if current is not None and current is sock and current.fileno() >= 0:
                self._loop.add_writer(current.fileno(), on_writable)

        self._loop.call_soon_threadsafe(register)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
        properties: Any = None,
    ) -> None:
        def fail_connect() -> None:
            if not self._connected.done() and not self._abandoned:
                self._connected.set_exception(
                    aiomqtt.MqttError(f"connection closed before CONNACK ({reason_code})"))

        if not self._connected.done():
            self._loop.call_soon_threadsafe(fail_connect)
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


class LinkError(BatteryHawkError):
    """The broker connection failed or broke (translated from aiomqtt)."""


class Link:
    """A single connection attempt and, if it succeeds, the connection."""

    def __init__(
        self,
        broker: BrokerSettings,
        config: ReconnectionConfig,
        *,
        will_topic: str | None,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        _PAHO_LOGGER.setLevel(logging.CRITICAL)  # see above; idempotent
        will = None
        if will_topic is not None:
            will = aiomqtt.Will(will_topic, b"offline", qos=1, retain=True)
        self._config = config
        self._client = _Client(
            broker.host,
            broker.port,
            username=broker.username,
            password=broker.password,
            identifier=broker.client_id,
            will=will,
            clean_session=True,
            keepalive=broker.keepalive,
            # aiomqtt 2 awaits every acknowledgement (and CONNACK, and the DISCONNECT)
            # with asyncio.wait_for(timeout=self.timeout). On Python 3.11 wait_for
            # swallows a cancellation that arrives in the loop iteration the
            # acknowledgement does, so a stopping task carries on as if never
            # cancelled. With math.inf aiomqtt passes timeout=None, and wait_for then
            # plainly awaits; every wait is bounded here with asyncio.timeout instead.
            timeout=math.inf,
            tls_context=ssl_context,
            tls_insecure=True if broker.tls.enabled and broker.tls.insecure else None,
            logger=_PAHO_LOGGER,
            max_inflight_messages=config.max_in_flight,
        )
        self._client.pending_calls_threshold = config.max_in_flight + 16
        self._opened = False

    async def open(self) -> None:
        """Connect within connection_timeout, or raise LinkError."""
        try:
            async with asyncio.timeout(self._config.connection_timeout):
                await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            await self._abandon()
            raise LinkError(_describe(exc)) from None
        except (TimeoutError, OSError) as exc:
            await self._abandon()
            raise LinkError(_describe(exc) or "connection timed out") from None
        except asyncio.CancelledError:
            await self._abandon()
            raise
        self._opened = True

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish and wait for the acknowledgement (QoS 1/2) within operation_timeout."""
        try:
            async with asyncio.timeout(self._config.operation_timeout):
                await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise LinkError(f"publish failed: {_describe(exc)}") from None
        except TimeoutError:
            raise LinkError("publish failed: operation timed out") from None

    async def subscribe(self, topic_filter: str, qos: int) -> None:
        """Subscribe and wait for SUBACK within operation_timeout."""
        try:
            async with asyncio.timeout(self._config.operation_timeout):
                await self._client.subscribe(topic_filter, qos=qos)
        except aiomqtt.MqttError as exc:
            raise LinkError(f"subscribe failed: {_describe(exc)}") from None
        except TimeoutError:
            raise LinkError("subscribe failed: operation timed out") from None

    async def unsubscribe(self, topic_filter: str) -> None:
        """Unsubscribe and wait for UNSUBACK within operation_timeout (also a cheap ping)."""
        try:
            async with asyncio.timeout(self._config.operation_timeout):
                await self._client.unsubscribe(topic_filter)
        except aiomqtt.MqttError as exc:
            raise LinkError(f"unsubscribe failed: {_describe(exc)}") from None
        except TimeoutError:
            raise LinkError("unsubscribe failed: operation timed out") from None

    async def receive(self, handler: Callable[[str, bytes], Awaitable[None]]) -> None:
        """Hand every incoming message to ``handler``; raises LinkError when the link is lost."""
        try:
            async for message in self._client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray):
                    data = bytes(payload)
                elif payload is None:
                    data = b""
                else:
                    data = str(payload).encode()
                await handler(message.topic.value, data)
        except aiomqtt.MqttError as exc:
            cause = exc.__cause__ or exc
            text = _describe(cause)
            if "Unspecified error" in text:  # paho's word for a socket that closed
                text = "closed by the broker or the network"
            raise LinkError(f"connection lost: {text}") from None
        raise LinkError("connection lost")

    async def close(self) -> None:
        """Disconnect cleanly if the link is up (no Last Will), else just release it."""
        try:
            if self._opened:
                self._opened = False
                async with asyncio.timeout(self._config.operation_timeout):
                    await self._client.__aexit__(None, None, None)
        except (aiomqtt.MqttError, TimeoutError, OSError):
            pass
        finally:  # also when cancelled: the socket must not outlive the link
            await self._abandon()

    async def abort(self) -> None:
        """Drop the connection without a DISCONNECT, so the broker publishes the Last Will.

        For when the last word we meant to say (``offline``) did not get through: a
        clean DISCONNECT would make the broker discard the Will and leave the retained
        status ``online``.
        """
        self._opened = False
        await self._abandon()

    async def _abandon(self) -> None:
        """Leave nothing behind: no socket, no connecting thread, no unread error."""
        await self._client.abandon(self._config.connection_timeout)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__

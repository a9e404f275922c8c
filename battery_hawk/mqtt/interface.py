"""MQTTInterface: publish that never fails for broker trouble, and the tasks behind it."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from battery_hawk.errors import PayloadError

from .backlog import Backlog
from .backoff import ReconnectionConfig, retry_delay
from .link import Link, LinkError
from .payload import check_size, encode_payload, validate_topic
from .processor import Counters, DeadLetterHook, QueueProcessor
from .queue import MessageQueue, QueuedMessage
from .session import MessageCallback, Session, Subscriptions
from .settings import BrokerSettings, ConnectionState, MQTTStats, build_ssl_context
from .spool import DeadLetter, Spool
from .supervisor import Supervisor, raise_if_cancelled, stop_tasks

__all__ = ["ConnectedHook", "DeadLetterHook", "MQTTInterface", "MessageCallback"]

ConnectedHook = Callable[[], Awaitable[None] | None]

_LOG = logging.getLogger("battery_hawk.mqtt")

SHORT_SESSION = 5.0  # seconds: a link lost sooner than this after connecting is "short"
SHORT_SESSIONS_TO_WARN = 3

class MQTTInterface(Supervisor):
    """Resilient publisher/subscriber for one broker.

    ``publish()`` queues every message in a bounded FIFO; a queue-processor task drains
    it whenever a connection is up, keeping up to ``max_in_flight`` QoS >= 1 publishes
    awaiting their acknowledgement; a message leaves the queue only once acknowledged.
    A connection task reconnects with jittered exponential backoff, and a health-check
    task verifies the link every ``health_check_interval``.

    With a ``spool`` every message that cannot go out at once is on disk before
    ``publish()`` returns, and what does not fit in memory waits there (backlog.py).
    Hooks added with ``add_connected_hook`` run after every new session is ready.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        reconnection: ReconnectionConfig | None = None,
        *,
        status_topic: str | None = None,
        default_qos: int = 1,
        on_dead_letter: DeadLetterHook | None = None,
        rng: random.Random | None = None,
        spool: Spool | None = None,
    ) -> None:
        if default_qos not in (0, 1, 2):
            raise ValueError(f"default_qos must be 0, 1 or 2, got {default_qos!r}")
        if status_topic is not None:
            validate_topic(status_topic)
        self.broker = broker
        self.config = reconnection or ReconnectionConfig()
        self.status_topic = status_topic
        self.default_qos = default_qos
        self._on_dead_letter = on_dead_letter
        self._rng = rng or random.Random()
        self._ssl_context = build_ssl_context(broker.tls) if broker.tls.enabled else None
        self._queue = MessageQueue(self.config.message_queue_size)
        self._backlog = Backlog(self._queue, spool, self.config.max_in_flight,
                                self._dead_letter)
        self._opened = False
        self._connected_hooks: list[ConnectedHook] = []
        self._seq = itertools.count()
        self._subscriptions = Subscriptions()
        self._session: Session | None = None
        self._session_ready = asyncio.Event()
        self._kick = asyncio.Event()
        super().__init__()
        self._counts = Counters()
        self._processor = QueueProcessor(
            self._backlog, self.config, self._counts,
            lambda coro, name: self._spawn(coro, name, owned=False),
        )
        self._last_connected: float | None = None
        self._outage_since: float | None = None
        self._short_sessions = 0  # links lost within SHORT_SESSION s of connecting, in a row

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    async def start(self) -> None:
        """Start the connection, queue-processor and health-check tasks (idempotent).

        Does not wait for the broker and does not raise when it is down.
        """
        if self._tasks:
            return
        if not self._opened:
            self._opened = True
            await self._backlog.open()  # off the loop; a failing spool means memory only
        self._kick.clear()
        self._set_state(ConnectionState.CONNECTING)
        self._spawn(self._backlog.run_writer(), "spool-writer")
        self._spawn(self._backlog.run_loader(), "spool-loader")
        self._spawn(self._run_connection(), "connection")
        self._spawn(self._processor.run(self._next_session), "queue-processor")
        self._spawn(self._run_health_check(), "health-check")

    async def connect(self) -> None:
        """Restart the connection sequence now (after FAILED, or to retry at once)."""
        if not self._tasks:
            await self.start()
            return
        self._consecutive_failures = 0
        if self._state is not ConnectionState.CONNECTED:
            self._set_state(ConnectionState.CONNECTING)
        self._kick.set()

    async def disconnect(self, flush_timeout: float = 5.0) -> None:
        """Flush within ``flush_timeout``, publish ``offline``, stop every task."""
        if not self._tasks:
            self._set_state(ConnectionState.DISCONNECTED)
            return
        if self._session is not None:
            await self.flush(flush_timeout)
        await self._stop_tasks("health-check", "queue-processor")
        session = self._session
        if session is not None and not session.lost.is_set() and self.status_topic:
            try:
                await session.link.publish(self.status_topic, b"offline", 1, True)
            except LinkError as exc:
                # A clean DISCONNECT now would make the broker discard the Last Will
                # and leave the retained status "online": drop the link instead.
                _LOG.warning("could not publish offline status (%s); "
                             "leaving it to the Last Will", exc)
                await session.link.abort()
        await self._stop_tasks("connection", "spool-loader", "spool-writer")
        self._set_state(ConnectionState.DISCONNECTED)
        spooled = self._backlog.spooling
        left = await self._backlog.close()
        self._opened = False
        if left and spooled:
            _LOG.info("stopped with %d message(s) kept in the spool for the next start", left)
        elif left:
            _LOG.warning("stopped with %d message(s) not delivered", left)

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """True once connected (and ``online`` published, subscriptions restored)."""
        try:
            async with asyncio.timeout(timeout):
                await self._session_ready.wait()
        except TimeoutError:
            return False
        return True

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued message is acknowledged; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._backlog.wait_empty()
        except TimeoutError:
            return False
        return True

    # -- publishing and subscribing ---------------------------------------------------

    async def publish(
        self, topic: str, payload: object, qos: int | None = None, retain: bool = False,
        *, supersede: bool | None = None,
    ) -> None:
        """Queue a message for delivery; never raises for broker problems.

        Two kinds of message (``supersede`` defaults to ``retain``): a *state* message
        (supersede True) replaces a queued older one for the same topic, in memory and in
        the spool, so a backlog never holds stale state; an *event* (supersede False,
        e.g. a reading) is delivered whole, in publish order, at least once.

        Raises PayloadError (counted in ``messages_rejected``) when the payload cannot
        be serialised or the topic or QoS is invalid; such a message is never queued.
        """
        try:
            validate_topic(topic)
            if qos is None:
                qos = self.default_qos
            if qos not in (0, 1, 2):
                raise PayloadError(f"qos must be 0, 1 or 2, got {qos!r}")
            data = encode_payload(payload)
            check_size(topic, data)
        except PayloadError as exc:
            self._counts.rejected += 1
            _LOG.error("rejected message for %s: %s", topic, exc)
            raise
        state = bool(retain) if supersede is None else supersede
        message = QueuedMessage(topic, data, qos, bool(retain), next(self._seq), time.time(),
                                supersede=state)
        await self._backlog.add(message, connected=self._session is not None)
        self._counts.queued += 1

    def add_connected_hook(self, hook: ConnectedHook) -> None:
        """Call ``hook()`` (plain or coroutine function) after every new broker session.

        For re-asserting retained state: a broker restarted without persistence has
        forgotten it. Runs in its own task once the session is ready; failures are logged.
        """
        self._connected_hooks.append(hook)

    async def subscribe(
        self, topic_filter: str, callback: MessageCallback, qos: int = 1
    ) -> None:
        """Call ``callback(topic, payload)`` for matching messages, across reconnects.

        The callback may be a plain function or a coroutine function. If the broker is
        unreachable the subscription is made on the next connection; this never raises
        for broker problems.
        """
        if not topic_filter:
            raise ValueError("topic_filter must not be empty")
        qos = self._subscriptions.add(topic_filter, callback, qos)
        session = self._session
        if session is not None and not session.lost.is_set():
            try:
                await session.link.subscribe(topic_filter, qos)
            except LinkError as exc:
                session.lose(str(exc))

    async def unsubscribe(self, topic_filter: str) -> None:
        """Forget every callback of ``topic_filter``."""
        if not self._subscriptions.remove(topic_filter):
            return
        session = self._session
        if session is not None and not session.lost.is_set():
            try:
                await session.link.unsubscribe(topic_filter)
            except LinkError as exc:
                session.lose(str(exc))

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Messages given up on (retry limit), oldest first; empty without a spool."""
        return await self._backlog.dead_letters(limit)

    async def replay_dead_letters(self, ids: list[int] | None = None) -> int:
        """Queue dead letters (all, or these ids) for delivery again; returns how many."""
        return await self._backlog.replay_dead_letters(ids)

    def pending_messages(self) -> list[QueuedMessage]:
        """Every message held in memory and not yet acknowledged, oldest first."""
        return self._queue.snapshot()

    # -- state and stats ---------------------------------------------------------------

    @property
    def connection_state(self) -> ConnectionState:
        """The current ConnectionState."""
        return self._state

    @property
    def stats(self) -> MQTTStats:
        """A snapshot of the counters."""
        c = self._counts
        b = self._backlog.counters
        return MQTTStats(
            connection_state=self._state,
            total_connections=c.connections,
            total_disconnections=c.disconnections,
            total_reconnections=max(0, c.connections - 1),
            messages_published=c.published,
            messages_queued=c.queued,
            messages_failed=c.failed,
            messages_dropped=b.dropped_overflow + c.dropped_retry + b.spool_evicted,
            dropped_overflow=b.dropped_overflow,
            dropped_retry_limit=c.dropped_retry,
            messages_rejected=c.rejected,
            consecutive_failures=self._consecutive_failures,
            queue_size=len(self._backlog),
            in_flight=self._queue.in_flight,
            superseded=b.superseded,
            spool_enabled=self._backlog.spooling,
            spooled=self._backlog.on_disk_only,
            spool_evicted=b.spool_evicted,
            dead_letters=b.dead_letters,
            dead_letters_held=self._backlog.dead_letters_held,
            last_connection_attempt=self._last_attempt,
            last_connected=self._last_connected,
            last_error=self._last_error,
        )

    # -- the connection task ------------------------------------------------------------

    async def _run_connection(self) -> None:
        cfg = self.config
        waits = 0  # backoff waits in the current outage
        delay: float | None = None  # None: attempt at once
        while True:
            if delay is not None and await self._sleep_unless_kicked(delay):
                waits = 0  # connect() was called: restart the sequence
            self._last_attempt = time.time()
            link = Link(self.broker, cfg, will_topic=self.status_topic,
                        ssl_context=self._ssl_context)
            try:
                await link.open()
            except LinkError as exc:
                raise_if_cancelled()
                failure: str | None = str(exc)
            else:
                session = Session(link, self._session_lost)
                opened = time.monotonic()
                try:
                    await self._serve(session)
                finally:
                    await self._end_session(session)
                # A link that broke before it was ready counts as a failed attempt.
                failure = None if session.ready else session.reason
                if session.ready:
                    self._note_session_length(time.monotonic() - opened, session.reason)
            if failure is None:
                waits = 0  # lost after a good connection: the outage starts now
            else:
                self._note_failed_attempt(failure)
                if self._state is ConnectionState.FAILED:
                    delay = cfg.max_retry_delay * self._jitter()  # keep probing
                    continue
            delay = retry_delay(waits, cfg, self._rng)
            waits += 1

    async def _serve(self, session: Session) -> None:
        """Run an established connection until it is lost."""
        receiver = self._spawn(self._receive(session), "receiver", owned=False)
        try:
            # Each await below may have swallowed a cancel (see raise_if_cancelled);
            # carrying on would leave this task waiting on session.lost for ever.
            raise_if_cancelled()
            try:
                if self.status_topic:
                    await session.link.publish(self.status_topic, b"online", 1, True)
                    raise_if_cancelled()
                for topic_filter, qos in self._subscriptions.filters():
                    await session.link.subscribe(topic_filter, qos)
                    raise_if_cancelled()
            except LinkError as exc:
                session.lose(str(exc))
            if not session.lost.is_set():
                self._on_connected()
                session.ready = True
                self._session = session
                self._session_ready.set()
                if self._connected_hooks:
                    self._spawn(self._run_connected_hooks(), "connected-hooks", owned=False)
            await session.lost.wait()
        finally:
            await stop_tasks({receiver})

    def _session_lost(self, session: Session) -> None:
        if self._session is session:
            self._session = None
            self._session_ready.clear()

    async def _end_session(self, session: Session) -> None:
        session.lose("closed")
        await session.link.close()
        if session.ready:
            self._counts.disconnections += 1
        if session.reason != "closed" and self._state is ConnectionState.CONNECTED:
            self._outage_since = time.monotonic()
            self._last_error = session.reason
            self._set_state(ConnectionState.RECONNECTING, session.reason)

    async def _receive(self, session: Session) -> None:
        try:
            await session.link.receive(self._subscriptions.dispatch)
        except LinkError as exc:
            session.lose(str(exc))

    async def _run_connected_hooks(self) -> None:
        for hook in list(self._connected_hooks):
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                _LOG.exception("connected hook failed")

    def _note_failed_attempt(self, reason: str) -> None:
        self._consecutive_failures += 1
        self._last_error = reason
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        limit = self.config.max_retries
        if limit and self._consecutive_failures >= limit:
            self._set_state(ConnectionState.FAILED, reason)
        elif self._consecutive_failures == 1 and self._state is ConnectionState.CONNECTING:
            _LOG.warning("cannot connect to MQTT broker %s:%s: %s; retrying",
                         self.broker.host, self.broker.port, reason)
        else:
            _LOG.debug("connection attempt %d failed: %s", self._consecutive_failures, reason)

    def _note_session_length(self, seconds: float, reason: str | None) -> None:
        """Say once when the broker keeps closing the link right after it is made.

        MQTT brokers close the older of two connections with the same client id, so two
        gateways sharing a gateway_id knock each other off about once a retry delay.
        """
        if reason == "closed" or seconds >= SHORT_SESSION:
            self._short_sessions = 0
            return
        self._short_sessions += 1
        if self._short_sessions == SHORT_SESSIONS_TO_WARN:
            _LOG.warning(
                "the broker closed the connection within %.0f s of connecting %d times in a "
                "row: another client probably uses the same client id %r (give each "
                "gateway its own gateway_id)", SHORT_SESSION, self._short_sessions,
                self.broker.client_id)

    def _on_connected(self) -> None:
        self._counts.connections += 1
        self._consecutive_failures = 0
        self._last_connected = time.time()
        since, self._outage_since = self._outage_since, None
        outage = f"after {time.monotonic() - since:.1f} s" if since is not None else None
        self._set_state(ConnectionState.CONNECTED, outage)

    async def _sleep_unless_kicked(self, delay: float) -> bool:
        """Sleep ``delay`` s; True if connect() cut it short."""
        try:
            async with asyncio.timeout(delay):
                await self._kick.wait()
        except TimeoutError:
            return False
        self._kick.clear()
        return True

    def _jitter(self) -> float:
        j = self.config.jitter_factor
        return 1.0 + self._rng.uniform(-j, j) if j else 1.0

    # -- the queue processor's side ------------------------------------------------------

    async def _next_session(self) -> Session:
        """The next ready session (the queue processor serves one at a time)."""
        while True:
            await self._session_ready.wait()
            if self._session is not None:
                return self._session

    def _dead_letter(self, message: QueuedMessage, reason: str) -> None:
        if self._on_dead_letter is None:
            return
        try:
            self._on_dead_letter(message, reason)
        except Exception:
            _LOG.exception("dead-letter hook failed")

    # -- the health check ---------------------------------------------------------------

    async def _run_health_check(self) -> None:
        probe = f"battery_hawk/_health/{self.broker.client_id or id(self)}"
        while True:
            await asyncio.sleep(self.config.health_check_interval)
            session = self._session
            if session is None or session.lost.is_set():
                continue
            try:
                # An UNSUBACK round trip proves the broker still answers on this link.
                await session.link.unsubscribe(probe)
            except LinkError as exc:
                session.lose(f"health check failed: {exc}")
            raise_if_cancelled()

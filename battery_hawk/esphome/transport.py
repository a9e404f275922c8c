"""EsphomeTransport: one ESPHome Bluetooth proxy as a radio (the Transport contract).

The transport keeps one native-API session to the proxy (aioesphomeapi's APIClient) in a
task of its own: it connects, checks that the proxy is a Bluetooth proxy, subscribes to
its raw advertisements and its free connection slots, and when the session ends (the
proxy rebooted, left the network, or stopped answering its keepalive pings) it connects
again after a backoff delay (battery_hawk.mqtt.backoff.retry_delay, jittered by an
injected random source). Nothing here ever waits on the proxy without a bound, so a proxy
that is away or hangs costs a caller at most its timeout and never stalls other radios.
session.py opens a session and checks the proxy's features. A proxy reports its free
connection slots and their limit in BluetoothConnectionsFreeResponse whenever they change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

from aioesphomeapi.ble_defs import ESP_CONNECTION_ERROR_DESCRIPTION
from bluetooth_data_tools import mac_to_int

from battery_hawk.config import EsphomeProxyConfig
from battery_hawk.errors import (
    AdapterNotReadyError,
    ConnectTimeoutError,
    DeviceNotFoundError,
    OutOfSlotsError,
    RadioStartingError,
    TransportError,
)
from battery_hawk.esphome._errors import API_FAILURES, failure_kind, translate
from battery_hawk.esphome.adverts import Heard
from battery_hawk.esphome.gatt import GattTable
from battery_hawk.esphome.link import EsphomeLink
from battery_hawk.esphome.listening import Listening
from battery_hawk.esphome.session import ProxyInfo, ProxySession, ProxyStatus, open_session
from battery_hawk.models import Advertisement
from battery_hawk.mqtt.backoff import ReconnectionConfig, retry_delay

__all__ = ["EsphomeTransport", "ProxyInfo", "ProxyStatus"]

_LOGGER = logging.getLogger(__name__)

# An ESPHome proxy forwards advertisements to one API client only (bluetooth_proxy.cpp,
# subscribe_api_connection: "Only one API subscription is allowed at a time"); a proxy
# that Home Assistant uses stays silent for us. Said once a session after this long.
ADVERT_SILENCE = 60.0
# reconnecting to a proxy: 1 s, doubling, at most a minute, +-20 %
FLAP_SESSION = 5.0  # s: a session shorter than this ended "as soon as it began"
STABLE_SESSION = 30.0  # s a proxy session must last to count as a recovery
# s after a session begins in which a device it has not heard yet may still be heard: a
# connection waits for its advertisement (bleak's BlueZ backend looks for an unknown
# device likewise) rather than fail because the first advertisements are still on the way
FIRST_HEARING = 5.0
PROXY_BACKOFF = ReconnectionConfig(initial_retry_delay=1.0, max_retry_delay=60.0,
                                   backoff_multiplier=2.0, jitter_factor=0.2)


class EsphomeTransport:
    """The Transport of one ESPHome Bluetooth proxy; start() (or ``async with``) runs it."""

    def __init__(
        self,
        proxy: EsphomeProxyConfig,
        *,
        connect_timeout: float = 20.0,
        operation_timeout: float = 10.0,
        api_timeout: float = 10.0,
        keepalive: float = 10.0,
        backoff: ReconnectionConfig = PROXY_BACKOFF,
        rng: random.Random | None = None,
        advert_silence: float = ADVERT_SILENCE,
        stable_session: float = STABLE_SESSION,
        config_key: str = "",
    ) -> None:
        """connect_timeout: one device connection; operation_timeout: one GATT call;
        api_timeout: connecting to the proxy itself; keepalive: seconds between pings
        (aioesphomeapi drops a session after 4.5 of them without an answer);
        advert_silence: seconds without any advertisement after which a session says
        the proxy seems to serve another client; stable_session: seconds a session must
        last before the reconnect backoff starts again from its first delay; config_key:
        the proxy's entry in the config (``bluetooth.esphome_proxies[0]``), named when
        the proxy refuses its key or password."""
        # aioesphomeapi warns of every lost connection itself; this transport says each
        # failure once, translated (STYLE 9), so the library's own lines would repeat it
        logging.getLogger("aioesphomeapi").setLevel(logging.ERROR)
        self.proxy = proxy
        self.name = f"esphome:{proxy.label}"
        self.connect_timeout = connect_timeout
        self.operation_timeout = operation_timeout
        self.api_timeout = api_timeout
        self.keepalive = keepalive
        self.advert_silence = advert_silence
        self.stable_session = stable_session
        self.config_key = config_key
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._session: ProxySession | None = None
        self._info: ProxyInfo | None = None  # who the proxy said it was, last session
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._tried = asyncio.Event()  # the first connection attempt is over
        self._listening = Listening(proxy.label)
        self._session_began = 0.0  # loop time the current session began
        self._links: set[EsphomeLink] = set()
        self._pending = 0  # connections asked for that the proxy has not counted yet
        self.last_error: TransportError | None = None
        self.sessions = 0  # API sessions established so far

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start the session task (idempotent); it connects in the background."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"esphome-proxy-{self.proxy.label}")

    async def close(self) -> None:
        """Drop every link, end the session and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> EsphomeTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def available(self) -> bool:
        """A session with the proxy is up."""
        return self._session is not None and not self._session.closed.is_set()

    @property
    def info(self) -> ProxyInfo | None:
        return self._session.info if self._session is not None else None

    @property
    def connections_free(self) -> int:
        """Slots the proxy can still connect with, less those being taken now (0 if away)."""
        session = self._session
        if session is None or not self.available or not session.info.connectable:
            return 0
        return max(0, session.free - self._pending)

    @property
    def connections_limit(self) -> int:
        return self._session.limit if self._session is not None else 0

    def status(self) -> ProxyStatus:
        """What /api/radios and /metrics show of this proxy now."""
        info = self._info
        return ProxyStatus(
            label=self.proxy.label, connected=self.available,
            name=info.name if info else None,
            esphome_version=info.esphome_version if info else None,
            slots_free=self.connections_free,
            slots_limit=self.connections_limit if self.available else 0,
            last_error=str(self.last_error) if self.last_error is not None else None,
            sessions=self.sessions)

    def rssi(self, address: str) -> int | None:
        """The RSSI (dBm) of the latest advertisement of address this proxy heard."""
        heard = self._listening.heard.get(address.upper())
        return heard.rssi if heard is not None else None

    @property
    def dropped_adverts(self) -> int:
        """Advertisements a stream fell too far behind to take."""
        return self._listening.dropped

    async def wait_ready(self, timeout: float, *, first_try: bool = False) -> ProxyInfo:
        """The proxy's info once a session is up; on timeout, the error that keeps it
        away (AuthenticationFailedError for a refused key, AdapterNotReadyError, ...).
        first_try: raise that error as soon as the first attempt failed (a one-off
        command), rather than waiting for the retries."""
        await self.start()
        try:
            async with asyncio.timeout(timeout):
                if first_try:
                    await self._tried.wait()
                    if not self.available and self.last_error is not None:
                        raise self.last_error
                await self._ready.wait()
        except TimeoutError:
            raise self._away() from None
        assert self._session is not None
        return self._session.info

    async def wait_tried(self, timeout: float) -> bool:
        """Wait (at most timeout seconds) until the first connection attempt is over,
        whatever its outcome; True if it is. Start-up waits for this, so that the first
        visits find a proxy that answers at once already connected."""
        await self.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._tried.wait()
        return self._tried.is_set()

    def _away(self) -> TransportError:
        if self.last_error is not None:
            return self.last_error
        return RadioStartingError(f"proxy {self.proxy.label}: still connecting")

    # --- the session loop ------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, serve, reconnect with backoff. Each kind of failure is said once per
        run of failures (STYLE 9), and the recovery once at INFO: at once when the proxy
        answers again, or once a session holds when the sessions kept ending."""
        attempt = 0
        said: set[str] = set()  # the failure kinds said in this run of failures
        flapping = False  # the last session ended before it held
        loop = asyncio.get_running_loop()
        while True:
            try:
                session = await open_session(self.proxy, keepalive=self.keepalive,
                                             timeout=self.api_timeout,
                                             config_key=self.config_key)
            except TransportError as exc:
                self.last_error = exc
                self._tried.set()
                kind = failure_kind(exc)
                if kind not in said:
                    said.add(kind)
                    _LOGGER.warning("%s; retrying with backoff", exc)
            else:
                began = self._session_began = loop.time()
                held = None if not flapping else loop.call_later(
                    self.stable_session, _LOGGER.info,
                    "proxy %s: a session holds again", self.proxy.label)
                try:
                    await self._serve(session, quiet=flapping, again=bool(said))
                finally:
                    self._tried.set()
                    if held is not None:
                        held.cancel()
                # only a session that held resets the backoff: a proxy that drops every
                # session at once (rebooting, out of memory) is retried ever more slowly
                lasted = loop.time() - began
                stable = lasted >= self.stable_session
                if stable:
                    attempt = 0
                    said.clear()
                # ended as soon as it began (not a proxy that ran a while, then went away)
                flapping = lasted < min(FLAP_SESSION, self.stable_session)
                if session.error is not None:
                    self.last_error = translate(session.error, f"proxy {self.proxy.label}",
                                                "the API session", config_key=self.config_key)
                else:
                    self.last_error = AdapterNotReadyError(
                        f"proxy {self.proxy.label}: the API session ended")
                kind = "flapping" if flapping and attempt > 0 else "ended"
                if kind not in said:
                    said.add(kind)
                    if kind == "ended":
                        _LOGGER.warning("%s; reconnecting", self.last_error)
                    else:
                        _LOGGER.warning("%s, as every session does as soon as it begins; "
                                        "retrying with backoff", self.last_error)
            await asyncio.sleep(retry_delay(attempt, self._backoff, self._rng))
            attempt += 1

    async def _serve(self, session: ProxySession, *, quiet: bool = False,
                     again: bool = False) -> None:
        """Serve one session until it ends; quiet: the "connected" line at debug (the
        proxy drops every session at once, and the log said so); again: it says
        "connected again" (after failures the log said)."""
        client = session.client
        try:
            if session.info.connectable:
                client.subscribe_bluetooth_connections_free(
                    lambda free, limit, _allocated: self._on_slots(session, free, limit))
                # the first count comes at once; until then the proxy has no known slot
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.api_timeout):
                        await session.counted.wait()
            client.subscribe_bluetooth_le_raw_advertisements(
                lambda message: self._on_adverts(session, message))
        except API_FAILURES as exc:
            client.force_disconnect()
            session.failures.append(exc if isinstance(exc, Exception) else RuntimeError(exc))
            return
        self._session, self._info = session, session.info
        self.sessions += 1
        self._ready.set()
        self._tried.set()
        _LOGGER.log(logging.DEBUG if quiet else logging.INFO,
                    "proxy %s: %s (ESPHome %s) connected%s%s", self.proxy.label,
                    session.info.name, session.info.esphome_version,
                    " again" if again else "",
                    "" if session.info.connectable
                    else "; passive: it cannot connect to devices")
        silence = asyncio.get_running_loop().call_later(
            self.advert_silence, self._check_silence, session)
        try:
            await session.closed.wait()
        finally:
            silence.cancel()
            self._ready.clear()
            self._session = None
            self._listening.heard.clear()  # a proxy that comes back must hear each again
            for link in list(self._links):
                link.drop()
            client.force_disconnect()

    def _on_slots(self, session: ProxySession, free: int, limit: int) -> None:
        session.free, session.limit = free, limit
        session.counted.set()

    def _check_silence(self, session: ProxySession) -> None:
        if not session.heard_any and not session.closed.is_set():
            _LOGGER.warning(
                "proxy %s: no advertisement in %.0f s. An ESPHome proxy forwards them to one "
                "API client only: if Home Assistant (or another program) uses this proxy, "
                "give battery-hawk a proxy of its own", self.proxy.label, self.advert_silence)

    def _on_adverts(self, session: ProxySession, message: Any) -> None:
        session.heard_any = True
        self._listening.on_adverts(message)

    # --- scanning --------------------------------------------------------------------

    def advertisements(self) -> AsyncIterator[Advertisement]:
        """What the proxy hears, as it arrives; nothing while the proxy is away."""
        return self._listening.stream(before=self.start)

    async def scan(self, timeout: float) -> list[Advertisement]:
        """The latest advertisement of each device heard within timeout seconds."""
        return await self._listening.latest(timeout, before=self.start)

    # --- connecting ------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, timeout: float | None = None
                      ) -> AsyncIterator[EsphomeLink]:
        """Connect through the proxy, yield a Link, disconnect on exit.

        Raises AdapterNotReadyError while the proxy is away (or cannot connect at all),
        DeviceNotFoundError for a device it has not heard, OutOfSlotsError when it has no
        free connection slot, ConnectTimeoutError, or another TransportError.
        """
        address = address.upper()
        timeout = self.connect_timeout if timeout is None else timeout
        await self.start()
        session = self._session
        where = f"{address} via proxy {self.proxy.label}"
        if session is None or not self.available:
            if not self._tried.is_set():
                raise RadioStartingError(f"{where}: the proxy is still connecting")
            why = failure_kind(self.last_error) if self.last_error else "not connected"
            raise AdapterNotReadyError(f"{where}: the proxy is not connected ({why})")
        if not session.info.connectable:
            raise AdapterNotReadyError(
                f"{where}: the proxy only listens; set `bluetooth_proxy: active: true` in "
                "its YAML to let it connect")
        # a session that began less than FIRST_HEARING s ago may not have heard it yet
        heard = await self._listening.wait_for(address, min(
            timeout, self._session_began + FIRST_HEARING - asyncio.get_running_loop().time()))
        if heard is None:
            raise DeviceNotFoundError(f"{where}: the proxy has not heard this device")
        if self.connections_free < 1:
            raise OutOfSlotsError(f"{where}: every connection slot of the proxy is busy "
                                  f"({session.limit} in all)")
        link = EsphomeLink(session.client, address, mac_to_int(address), where,
                           self.operation_timeout)
        self._pending += 1
        try:
            await self._establish(session, link, heard, timeout)
        finally:
            self._pending -= 1
        self._links.add(link)
        try:
            yield link
        finally:
            self._links.discard(link)
            await asyncio.shield(link.close())

    async def _establish(self, session: ProxySession, link: EsphomeLink, heard: Heard,
                         timeout: float) -> None:
        client = session.client
        try:
            async with asyncio.timeout(timeout + 1.0):  # the API call has its own bound
                unsubscribe = await client.bluetooth_device_connect(
                    link.mac, link.on_state, timeout=timeout,
                    feature_flags=session.info.feature_flags, has_cache=False,
                    address_type=heard.address_type)
                if not link.established and link.error == 0:
                    # ESPHome answers "not connected" with no error code when every slot
                    # is taken ("No free connections available", bluetooth_proxy.cpp)
                    unsubscribe()
                    raise OutOfSlotsError(f"{link.where}: the proxy has no free connection "
                                          "slot (another client holds them)")
                if not link.established:
                    unsubscribe()
                    why = ESP_CONNECTION_ERROR_DESCRIPTION.get(
                        link.error, f"error {link.error}")  # type: ignore[call-overload]
                    raise TransportError(f"{link.where}: connect failed: {why} "
                                         f"({link.error:#x})")
                link.attach(GattTable.from_services(link.address, (
                    await client.bluetooth_gatt_get_services(link.mac)).services),
                    unsubscribe)
        except TimeoutError as exc:
            await link.close()
            raise ConnectTimeoutError(f"{link.where}: no connection within {timeout:.1f} s"
                                      ) from exc
        except asyncio.CancelledError:
            await asyncio.shield(link.close())
            raise
        except API_FAILURES as exc:
            await asyncio.shield(link.close())
            raise translate(exc, link.where, "connect") from exc

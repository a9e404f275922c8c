"""One coordinator per configured device: fetch frames, decode, stamp, hand on.

Polled, reading and notifying devices are visited every ``poll_interval`` over a short
connection (a Leagend monitor accepts one link at a time, and the adapter must not scan
while it is connected, so no device may hold the radio for good). Devices whose adverts
carry a reading (Victron; BM2 and BM6: voltage and SoC) are fed advertisements by the
app's scanner and emit at most one reading per ``poll_interval``.

A device's ``mode``: ``passive`` never connects; ``poll`` ignores advertisements;
``auto`` (default) publishes advert readings, filling the fields adverts lack
(temperature, state) from the last connection while that is at most AUTO_REFRESH
intervals old, and connects only when no advert reading came in the last interval or
the last connection is older than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from battery_hawk.ble.breaker import CircuitBreaker
from battery_hawk.ble.exchange import fetch_reading
from battery_hawk.ble.link import RadioAware, Transport
from battery_hawk.config import DeviceConfig
from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    CircuitOpenError,
    ConnectTimeoutError,
    DecodeError,
    NotAReading,
    OutOfSlotsError,
    RadioStartingError,
    TransportError,
)
from battery_hawk.logs import bind, log_context
from battery_hawk.models import Advertisement, DeviceInfo, DeviceReading, Reading
from battery_hawk.protocols.base import Driver, Mode
from battery_hawk.storage import SeqStore

__all__ = ["AUTO_REFRESH", "DeviceCoordinator", "DeviceStatus", "ReadingSink", "offline_after"]

_log = logging.getLogger(__name__)

AUTO_REFRESH = 10  # auto mode: connect at least every this many poll intervals
# a visit that failed only because no radio was ready (a proxy still connecting or away,
# an adapter off) is tried again after 2 s, doubling up to the poll interval: a radio
# that comes up reads its devices within seconds, not a whole interval later
RADIO_RETRY = 2.0


def offline_after(poll_interval: float) -> float:
    """Seconds without a reading after which a device counts as offline."""
    return max(3 * poll_interval, 180.0)


class ReadingSink(Protocol):
    """Where a coordinator sends what it learns (the app publishes it)."""

    async def on_reading(self, reading: DeviceReading) -> None: ...

    async def on_availability(self, device: DeviceInfo, online: bool) -> None: ...

    def on_error(self, device: DeviceInfo, kind: str) -> None:
        """Count a failure: kind is "decode", "transport" (the device could not be read)
        or "radio" (no radio could try: adapters off, proxies away or full)."""
        ...


@dataclass(slots=True)
class DeviceStatus:
    """What the status page and health endpoint show about one device."""

    online: bool | None = None  # None until the first reading or timeout
    last_reading: DeviceReading | None = None
    last_seen: float | None = None  # monotonic time of the last reading
    last_error: str | None = None
    decode_errors: int = 0
    transport_errors: int = 0
    readings: int = 0


class DeviceCoordinator:
    """Turns one device's frames into stamped readings."""

    def __init__(
        self,
        config: DeviceConfig,
        driver: Driver,
        transport: Transport,
        sink: ReadingSink,
        seq: SeqStore,
        *,
        connect_timeout: float = 20.0,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        after_reading: Callable[[DeviceCoordinator], Awaitable[object]] | None = None,
        wants_visit: Callable[[DeviceCoordinator], bool] | None = None,
        may_read: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        # the history gap fill: after_reading runs after each visit's reading is handed on
        # (it must not raise); wants_visit makes auto mode connect although adverts flow
        self.after_reading = after_reading
        self.wants_visit = wants_visit
        # several gateways on one site: False while another gateway owns the device
        self._may_read = may_read or (lambda: True)
        self._woken = asyncio.Event()  # take_over(): visit now, not at the next slot
        self.driver = driver
        self.info = DeviceInfo(
            device_id=config.device_id,
            address=config.address,
            name=config.display_name,
            model=driver.model,
            manufacturer=driver.manufacturer,
            family=driver.family,
        )
        self.status = DeviceStatus()
        self._transport = transport
        self._sink = sink
        self._seq = seq
        self._connect_timeout = connect_timeout
        self._breaker = breaker or CircuitBreaker(
            failure_threshold=5, recovery_timeout=max(300.0, config.poll_interval), clock=clock
        )
        self._clock = clock
        self._started = clock()
        self._advert_due: float | None = None  # a passive device's next reading from adverts
        self._last_advert: float | None = None  # last advert reading emitted (auto mode)
        self._last_visit: float | None = None  # last reading over a connection
        self._last_connected: Reading | None = None
        self._failing = False
        self._no_radio = 0  # visits in a row that failed because no radio was ready

    @property
    def passive(self) -> bool:
        """Whether the device is never connected to (its loop need not run)."""
        return self.driver.mode is Mode.PASSIVE or self.config.mode == "passive"

    @property
    def listens(self) -> bool:
        """Whether the scanner should feed it advertisements."""
        return bool(self.driver.advert_fields) and self.config.mode != "poll"

    def _visit_due(self) -> bool:
        """auto: skip a connection while adverts bring readings and the last one is fresh."""
        if self.config.mode != "auto" or not self.listens:
            return True
        if self.wants_visit is not None and self.wants_visit(self):
            return True
        now, interval = self._clock(), self.config.poll_interval
        adverts_flow = self._last_advert is not None and now - self._last_advert < interval
        fresh = (self._last_visit is not None
                 and now - self._last_visit < AUTO_REFRESH * interval)
        return not (adverts_flow and fresh)

    @property
    def breaker_state(self) -> str:
        """The circuit breaker's state: closed, open or half_open."""
        return str(self._breaker.state)

    def reset_breaker(self) -> None:
        """Close the circuit breaker: the next visit goes ahead (an operator's reset)."""
        self._breaker.record_success()
        _log.info("%s (%s): circuit breaker reset", self.info.name, self.info.address)

    async def run(self, stop: asyncio.Event, first_delay: float = 0.0) -> None:
        """Visit the device every poll_interval until ``stop`` is set (not for passive ones).

        ``first_delay`` staggers devices so they do not all reach for the radio at once.
        A visit under way when ``stop`` is set finishes first, so shutdown loses no reading.
        """
        bind(device_id=self.info.device_id, address=self.info.address)  # this task's logs
        interval = self.config.poll_interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), first_delay)
        due = self._clock()
        stopping = asyncio.ensure_future(stop.wait())  # one waiter for the whole run
        try:
            while not stop.is_set():
                if self._visit_due() and self._may_read():
                    await self.poll_once()
                # a fixed schedule, so wake-up latency does not add up into drift; a visit
                # that overran its slot is followed at once by the next
                due = max(due + interval, self._clock())
                if self._no_radio:  # no radio was ready: try again soon
                    due = min(due, self._clock() + min(
                        interval, RADIO_RETRY * 2 ** min(self._no_radio - 1, 16)))
                await self._sleep(stopping, due - self._clock())
                if self._woken.is_set():
                    self._woken.clear()
                    due = self._clock()
        finally:
            stopping.cancel()

    async def _sleep(self, stopping: asyncio.Future[Any], seconds: float) -> None:
        """Sleep until ``stopping`` is done, ``take_over()`` wakes us, or ``seconds`` pass."""
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait((stopping, woken), timeout=max(seconds, 0.0),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()

    async def poll_once(self) -> Reading | None:
        """One visit: connect, fetch a reading, publish it. Failures are counted, not raised."""
        if not self._breaker.allow():
            return None
        # fetch_reading bounds connecting and reading; this bounds the whole visit, so a
        # wedged BlueZ cannot hold the loop (and the watchdog that watches it) for good
        limit = 3 * self._connect_timeout + 5
        started = self._clock()
        try:
            async with asyncio.timeout(limit):
                reading = await fetch_reading(self._transport, self.config.address,
                                              self.driver, self._connect_timeout)
        except TimeoutError:
            self._fail("transport", ConnectTimeoutError(f"no reading within {limit:.0f} s"))
            return None
        except TransportError as exc:
            self._fail("transport", exc)
            return None
        except NotAReading as exc:
            self._fail("transport", exc)  # the device answered, but never with a reading
            return None
        except DecodeError as exc:
            self._breaker.record_success()  # the radio link works; the frame did not
            self._fail("decode", exc)
            return None
        except Exception as exc:  # a library error we do not know yet: keep the loop alive
            self._fail("transport", exc, unexpected=True)
            return None
        self._breaker.record_success()
        self._no_radio = 0
        self._last_visit, self._last_connected = self._clock(), reading
        if not self._may_read():
            # another gateway took the device over while this visit was under way: it
            # reads the device now, and a reading from here would make two readers
            _log.debug("%s: taken over during the visit; reading not published",
                       self.info.address)
            return None
        transport = self._transport
        radio = (transport.last_radio(self.config.address)
                 if isinstance(transport, RadioAware) else None)
        await self._emit(reading, rssi=None, duration=self._clock() - started, radio=radio)
        if self.after_reading is not None:
            await self.after_reading(self)
        return reading

    async def feed(self, adv: Advertisement) -> Reading | None:
        """Decode an advertisement of a passive device; publish at most once per interval."""
        if self._advert_due is not None and self._clock() < self._advert_due:
            return None  # most adverts: not due yet (checked before any other work)
        with log_context(device_id=self.info.device_id, address=self.info.address):
            return await self._feed(adv)

    async def _feed(self, adv: Advertisement) -> Reading | None:
        now = self._clock()
        if not self._may_read():
            return None
        due = self._advert_due
        if due is not None and now < due:
            return None
        try:
            reading = self.driver.decode_advert(adv)
        except NotAReading:
            return None
        except DecodeError as exc:
            self._fail("decode", exc)
            return None
        except Exception as exc:  # a decoder bug must not stop the scanner
            self._fail("decode", exc, unexpected=True)
            return None
        reading = self._complete(reading)
        self._last_advert = now
        # on a schedule, like visits: adverts come at their own pace, and "one interval
        # since the last" would lose a reading whenever an advert came a little early
        interval = self.config.poll_interval
        self._advert_due = max((due if due is not None else now) + interval,
                               now + interval / 2)
        await self._emit(reading, rssi=adv.rssi, radio=adv.radio)
        return reading

    def silent_for(self) -> float:
        """Seconds since the last reading (since the coordinator started or took the device
        over from another gateway, if that is later)."""
        return self._clock() - self._silent_since()

    def _silent_since(self) -> float:
        last = self.status.last_seen
        return self._started if last is None else max(last, self._started)

    def take_over(self) -> None:
        """This gateway reads the device (again): visit it now; availability counts from now."""
        self._started = self._clock()
        self.status.online = None
        self._woken.set()

    def _complete(self, reading: Reading) -> Reading:
        """An advert reading with what adverts lack taken from a fresh connected reading."""
        last, fields = self._last_connected, self.driver.advert_fields
        if last is None or "*" in fields or self._last_visit is None:
            return reading
        if self._clock() - self._last_visit >= AUTO_REFRESH * self.config.poll_interval:
            return reading
        extra = {name: getattr(last, name) for name in ("temperature", "state", "device_state")
                 if name not in fields and getattr(reading, name) is None}
        return dataclasses.replace(reading, **extra)

    async def check_availability(self) -> None:
        """Mark the device offline once it has been silent too long (called periodically)."""
        with log_context(device_id=self.info.device_id, address=self.info.address):
            await self._check_availability()

    async def _check_availability(self) -> None:
        if not self._may_read():
            return  # another gateway reads it and says whether it is online
        silent_since = self._silent_since()
        if self.status.online is not False and (
            self._clock() - silent_since >= offline_after(self.config.poll_interval)
        ):
            self.status.online = False
            _log.warning("%s (%s) is offline: no reading for %.0f s", self.info.name,
                         self.info.address, self._clock() - silent_since)
            await self._sink.on_availability(self.info, False)

    async def _emit(self, reading: Reading, rssi: int | None,
                    duration: float | None = None, radio: str | None = None) -> None:
        """Stamp and hand on a reading; a failure downstream is logged, never raised."""
        try:
            await self._stamp_and_send(reading, rssi, duration, radio)
        except Exception:
            _log.exception("%s (%s): handing on a reading failed", self.info.name,
                           self.info.address)

    async def _stamp_and_send(self, reading: Reading, rssi: int | None,
                              duration: float | None, radio: str | None) -> None:
        now = self._clock()
        # a driver that learns the product name from the device (Victron's model id)
        model = getattr(self.driver, "device_model", None)
        if model and model != self.info.model:
            self.info = dataclasses.replace(self.info, model=model)
        stamped = DeviceReading(
            device=self.info,
            reading=reading,
            timestamp=datetime.now(UTC),
            seq=self._seq.next(self.info.device_id),
            rssi=rssi,
            duration=duration,
            radio=radio,
        )
        status = self.status
        status.last_reading, status.last_seen, status.readings = stamped, now, status.readings + 1
        if self._failing:
            self._failing = False
            _log.info("%s (%s) reads again", self.info.name, self.info.address)
        if status.online is not True:
            if status.online is False:
                _log.info("%s (%s) is online again", self.info.name, self.info.address)
            status.online = True
            await self._sink.on_availability(self.info, True)
        await self._sink.on_reading(stamped)

    def _fail(self, kind: str, exc: BaseException, *, unexpected: bool = False) -> None:
        status = self.status
        status.last_error = f"{type(exc).__name__}: {exc}"
        no_radio = isinstance(exc, AdapterNotReadyError | BluetoothUnavailableError)
        self._no_radio = self._no_radio + 1 if no_radio else 0
        if isinstance(exc, RadioStartingError):  # a radio still coming up: no fault yet
            _log.debug("%s (%s): %s", self.info.name, self.info.address, status.last_error)
            return
        if kind == "decode":
            status.decode_errors += 1
        else:
            status.transport_errors += 1
            # a radio that is away or full (an adapter off, a proxy gone, every slot
            # taken) is no fault of the device: its breaker stays closed so the device is
            # read as soon as a radio can, and the sink hears it as the radio's ("radio")
            if isinstance(exc, AdapterNotReadyError | BluetoothUnavailableError
                          | OutOfSlotsError):
                kind = "radio"
            elif not isinstance(exc, CircuitOpenError):
                self._breaker.record_failure()
        self._sink.on_error(self.info, kind)
        if not self._failing:  # one warning per run of failures; recovery logged once too
            self._failing = True
            _log.warning("%s (%s): %s", self.info.name, self.info.address, status.last_error,
                         exc_info=exc if unexpected else None)
        else:
            _log.debug("%s (%s): %s", self.info.name, self.info.address, status.last_error)

"""The bleak transport: one scanner and serialised connections per adapter.

Rules this file enforces (STYLE.md 5, 6):
- connections go through bleak_retry_connector.establish_connection with
  BleakClientWithServiceCache;
- an adapter never scans while it connects or holds a connection: every transport on
  one adapter (in one event loop) shares an AdapterGate whose lock is held while the
  scanner is started / stopped and while a connection is being established, and the
  scanner only runs while no connection is open;
- max_concurrent_connections is a semaphore per adapter (sized by its first transport);
- a stuck adapter is power-cycled (ble/recovery.py decides when, ble/_gate.py does it);
- bleak errors leave this module only as TransportError subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak_retry_connector import (
    BleakClientWithServiceCache,
    establish_connection,
    get_device_by_adapter,
)
from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthExternal

from battery_hawk.ble._errors import (
    BLEAK_FAILURES,
    RetryPolicy,
    Trouble,
    classify,
    retry_delay,
    row,
    translate,
)
from battery_hawk.ble._gate import AdapterGate, adapter_gate, to_advertisement
from battery_hawk.ble.diagnose import diagnose
from battery_hawk.ble.link import NotifyCallback, latest_per_device
from battery_hawk.ble.recovery import (
    RecoveryEvent,
    RecoverySettings,
)
from battery_hawk.errors import (
    ConnectTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    OutOfSlotsError,
    TransportError,
)
from battery_hawk.models import Advertisement

__all__ = ["BleakLink", "BleakTransport", "to_advertisement"]

_LOGGER = logging.getLogger(__name__)

ADVERT_QUEUE_SIZE = 256
DISCONNECT_TIMEOUT = 5.0
DBUS_TIMEOUT = 5.0


class BleakLink:
    """An open bleak connection, seen through the Link protocol (bytes in, bytes out)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._client: BleakClient | None = None
        self._dropped = asyncio.Event()

    def _attach(self, client: BleakClient) -> None:
        self._client = client

    def _on_disconnect(self, _client: BleakClient) -> None:
        if self._client is None:
            # a drop while bleak still connects (le-connection-abort-by-local: BlueZ
            # connects, aborts, and bleak retries) is not the drop of this link
            _LOGGER.debug("%s: link dropped while connecting", self.address)
            return
        _LOGGER.debug("%s: link dropped", self.address)
        self._dropped.set()

    @property
    def is_connected(self) -> bool:
        return (
            self._client is not None and self._client.is_connected and not self._dropped.is_set()
        )

    def _live(self, doing: str) -> BleakClient:
        if not self.is_connected or self._client is None:
            raise DeviceDisconnectedError(f"{self.address}: {doing} on a dropped link")
        return self._client

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None:
        client = self._live("write")
        try:
            await client.write_gatt_char(char_uuid, data, response=response)
        except BLEAK_FAILURES as exc:
            raise self._translate(exc, f"write {char_uuid}") from exc

    async def read(self, char_uuid: str) -> bytes:
        client = self._live("read")
        try:
            return bytes(await client.read_gatt_char(char_uuid))
        except BLEAK_FAILURES as exc:
            raise self._translate(exc, f"read {char_uuid}") from exc

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        client = self._live("start_notify")

        def deliver(_char: Any, data: bytearray) -> None:
            callback(bytes(data))

        try:
            await client.start_notify(char_uuid, deliver)
        except BLEAK_FAILURES as exc:
            raise self._translate(exc, f"start_notify {char_uuid}") from exc

    async def stop_notify(self, char_uuid: str) -> None:
        client = self._live("stop_notify")
        try:
            await client.stop_notify(char_uuid)
        except BLEAK_FAILURES as exc:
            raise self._translate(exc, f"stop_notify {char_uuid}") from exc

    async def wait_disconnected(self) -> None:
        await self._dropped.wait()

    def _translate(self, exc: BaseException, doing: str) -> TransportError:
        if self._dropped.is_set():
            return DeviceDisconnectedError(f"{self.address}: link dropped during {doing}")
        return translate(exc, self.address, doing)

    async def close(self) -> None:
        """Disconnect, bounded, never raising (the link may already be gone)."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT):
                await client.disconnect()
        except BLEAK_FAILURES as exc:
            _LOGGER.debug("%s: disconnect failed: %r", self.address, exc)
        self._dropped.set()


_MAC = re.compile(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


async def _adapter_by_address(address: str) -> str:
    """hciN of the BlueZ adapter with this MAC, from org.bluez's managed objects."""
    bus = MessageBus(bus_type=BusType.SYSTEM, auth=AuthExternal(uid=os.getuid()))
    try:
        async with asyncio.timeout(DBUS_TIMEOUT):
            await bus.connect()
            reply = await bus.call(
                Message(
                    destination="org.bluez",
                    path="/",
                    interface="org.freedesktop.DBus.ObjectManager",
                    member="GetManagedObjects",
                )
            )
    except (OSError, TimeoutError, DBusError) as exc:
        raise translate(exc, f"adapter {address}", "asking BlueZ") from exc
    finally:
        bus.disconnect()
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        raise TransportError(f"adapter {address}: BlueZ did not list its objects")
    for path, interfaces in reply.body[0].items():
        props = interfaces.get("org.bluez.Adapter1")
        if props and str(props["Address"].value).upper() == address.upper():
            return str(path).rsplit("/", 1)[-1]
    raise TransportError(f"no Bluetooth adapter with address {address}")


class BleakTransport:
    """The Transport of one adapter over bleak's BlueZ backend."""

    def __init__(
        self,
        adapter: str = "hci0",
        connect_timeout: float = 20.0,
        max_concurrent_connections: int = 1,
        *,
        in_progress_retries: int | None = None,
        in_progress_backoff: float | None = None,
        rng: random.Random | None = None,
        recovery: RecoverySettings | None = None,
        on_recovery: Callable[[RecoveryEvent], None] | None = None,
    ) -> None:
        """in_progress_*: override the table's policy for InProgress (see ble/_errors.py);
        recovery: when a stuck adapter is power-cycled (the adapter's first transport in
        an event loop sets it); on_recovery: told of every power cycle (for a metric)."""
        if max_concurrent_connections < 1:
            raise ValueError("max_concurrent_connections must be at least 1")
        self.adapter = adapter
        self.connect_timeout = connect_timeout
        self.max_concurrent_connections = max_concurrent_connections
        base = row(Trouble.IN_PROGRESS).policy
        self._in_progress = RetryPolicy(
            retries=base.retries if in_progress_retries is None else in_progress_retries,
            backoff=base.backoff if in_progress_backoff is None else in_progress_backoff,
            heals=base.heals,
        )
        self._rng = rng or random.Random()
        self.recovery = recovery or RecoverySettings()
        self._on_recovery = on_recovery
        self._adapter_name: str | None = None if _MAC.fullmatch(adapter) else adapter

    async def _gate(self) -> AdapterGate:
        gate = adapter_gate(await self.adapter_name(), self.recovery)
        if self._on_recovery is not None and self._on_recovery not in gate.listeners:
            gate.listeners.append(self._on_recovery)
        return gate

    async def _raise_explained(self, exc: TransportError) -> None:
        """For Bluetooth that is not there (no D-Bus, no BlueZ, no adapter, powered off,
        rfkill): raise what exactly is wrong and what to do (ble/diagnose.py) from exc.
        Returns (the caller re-raises exc) for every other error."""
        if classify(exc) not in (Trouble.UNAVAILABLE, Trouble.NOT_READY):
            return
        found = await diagnose(self.adapter)
        if found is not None:
            raise found from exc

    def policy(self, trouble: Trouble) -> RetryPolicy:
        """The retry policy this transport applies to a class of trouble."""
        return self._in_progress if trouble is Trouble.IN_PROGRESS else row(trouble).policy

    async def adapter_name(self) -> str:
        """The BlueZ name (hciN) of the configured adapter, which may be given by its MAC."""
        if self._adapter_name is None:
            self._adapter_name = await _adapter_by_address(self.adapter)
        return self._adapter_name

    # --- scanning ------------------------------------------------------------------

    def advertisements(self) -> AsyncIterator[Advertisement]:
        """Advertisements as they arrive; discovery pauses while a connection is open."""
        return self._advert_gen()

    async def _advert_gen(self) -> AsyncGenerator[Advertisement, None]:
        queue: asyncio.Queue[Advertisement] = asyncio.Queue(ADVERT_QUEUE_SIZE)
        try:
            gate = await self._gate()
            await gate.subscribe(queue)
        except TransportError as exc:
            await self._raise_explained(exc)
            raise
        try:
            while True:
                yield await queue.get()
        finally:
            # shielded: the scanner must stop even when the consumer is cancelled
            await asyncio.shield(gate.unsubscribe(queue))

    async def scan(self, timeout: float) -> list[Advertisement]:
        """One discovery pass: the latest advertisement of each device seen."""
        return list((await latest_per_device(self._advert_gen(), timeout)).values())

    # --- connecting ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(
        self, address: str, *, timeout: float | None = None
    ) -> AsyncIterator[BleakLink]:
        """Connect (scanning paused), yield a Link, disconnect on exit."""
        address = address.upper()
        timeout = self.connect_timeout if timeout is None else timeout
        try:
            gate = await self._gate()
        except TransportError as exc:
            await self._raise_explained(exc)
            raise
        slots = gate.slots(self.max_concurrent_connections)
        try:
            async with asyncio.timeout(timeout):
                await slots.acquire()
        except TimeoutError as exc:
            raise OutOfSlotsError(
                f"{address}: every connection slot of {gate.adapter} stayed busy for {timeout} s"
            ) from exc
        try:
            async with gate.lock:
                gate.connections += 1
                try:
                    await gate.refresh_locked()  # stops discovery
                    link = await self._establish(gate, address, timeout)
                except BaseException as exc:
                    gate.connections -= 1
                    with contextlib.suppress(TransportError):
                        await gate.refresh_locked()
                    if isinstance(exc, TransportError):
                        await self._raise_explained(exc)
                    raise
            try:
                yield link
            finally:
                await asyncio.shield(self._release(gate, link))
        finally:
            slots.release()

    async def _release(self, gate: AdapterGate, link: BleakLink) -> None:
        await link.close()
        async with gate.lock:
            gate.connections -= 1
            try:
                await gate.refresh_locked()
            except TransportError as exc:
                _LOGGER.warning("%s: resuming discovery failed: %s", self.adapter, exc)

    async def _establish(self, gate: AdapterGate, address: str, timeout: float) -> BleakLink:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        device = await self._find(gate, address, timeout)
        attempt = 0
        retried_after_recovery = False
        while True:
            attempt += 1
            link = BleakLink(address)
            try:
                async with asyncio.timeout_at(deadline):
                    client = await establish_connection(
                        BleakClientWithServiceCache,
                        device,
                        address,
                        disconnected_callback=link._on_disconnect,
                        max_attempts=1,
                        timeout=timeout,
                    )
            except BLEAK_FAILURES as exc:
                if isinstance(exc, TimeoutError):  # our deadline, not a bleak failure
                    raise ConnectTimeoutError(
                        f"{address}: no connection within {timeout:.1f} s"
                    ) from exc
                trouble = classify(exc)
                policy = self.policy(trouble)
                if await gate.failed_locked(trouble) and not retried_after_recovery:
                    retried_after_recovery = True  # one more try on the power-cycled adapter
                    continue
                if attempt <= policy.retries:
                    delay = retry_delay(policy, attempt, self._rng)
                    if loop.time() + delay < deadline:
                        _LOGGER.debug("%s: %s (%s), retry in %.2f s", address, trouble.value,
                                      exc, delay)
                        await asyncio.sleep(delay)
                        continue
                raise translate(exc, address, f"connect (attempt {attempt})", trouble) from exc
            gate.succeeded()
            link._attach(client)
            return link

    async def _find(self, gate: AdapterGate, address: str, timeout: float) -> BLEDevice:
        """The BLEDevice BlueZ already knows, else one found by a short discovery."""
        adapter = gate.adapter
        try:
            device = await get_device_by_adapter(address, adapter)
            if device is None:
                # discovery before the connect, inside the adapter lock: never concurrent
                device = await BleakScanner.find_device_by_address(
                    address, timeout=timeout, bluez={"adapter": adapter}
                )
        except BLEAK_FAILURES as exc:
            trouble = classify(exc)
            await gate.failed_locked(trouble)
            raise translate(exc, address, "looking up the device", trouble) from exc
        if device is None:
            raise DeviceNotFoundError(f"{address}: not seen on {self.adapter} within {timeout} s")
        return device

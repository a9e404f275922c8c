"""One adapter's shared state: its scanner, connection slots and recovery.

Every BleakTransport on one adapter (in one event loop) shares an AdapterGate: its lock
is held while the scanner starts or stops, while a connection is established and while
the adapter is power-cycled, so the adapter never scans and connects at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from battery_hawk.ble._errors import BLEAK_FAILURES, Trouble, classify, translate
from battery_hawk.ble.recovery import (
    AdapterDoctor,
    RecoveryEvent,
    RecoveryReason,
    RecoverySettings,
    recover_adapter,
)
from battery_hawk.errors import TransportError
from battery_hawk.models import Advertisement

__all__ = ["AdapterGate", "adapter_gate", "to_advertisement"]

_LOGGER = logging.getLogger("battery_hawk.ble.transport")


def to_advertisement(device: BLEDevice, adv: AdvertisementData) -> Advertisement:
    """bleak's view of one advertisement as a battery-hawk Advertisement."""
    return Advertisement(
        address=device.address,
        name=adv.local_name or device.name,
        rssi=adv.rssi,
        manufacturer_data={int(k): bytes(v) for k, v in adv.manufacturer_data.items()},
        service_data={str(k).lower(): bytes(v) for k, v in adv.service_data.items()},
        service_uuids=tuple(adv.service_uuids),
    )


class AdapterGate:
    """Scanner, connection and recovery bookkeeping shared by every transport on one adapter."""

    def __init__(self, adapter: str, recovery: RecoverySettings) -> None:
        self.adapter = adapter
        self.lock = asyncio.Lock()
        self.connections = 0
        self.subscribers: set[asyncio.Queue[Advertisement]] = set()
        self.doctor = AdapterDoctor(recovery)
        self.listeners: list[Callable[[RecoveryEvent], None]] = []
        self._scanner: BleakScanner | None = None
        self._slots: asyncio.Semaphore | None = None
        self._watchdog: asyncio.Task[None] | None = None

    def slots(self, limit: int) -> asyncio.Semaphore:
        """The adapter's connection slots; the first transport on the adapter sizes it."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(limit)
        return self._slots

    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        if self.doctor.unhelped:
            _LOGGER.info("%s hears advertisements again", self.adapter)
        self.doctor.heard()
        advert = to_advertisement(device, adv)
        for queue in self.subscribers:
            if queue.full():  # a slow consumer loses its oldest adverts, never blocks us
                queue.get_nowait()
            queue.put_nowait(advert)

    async def refresh_locked(self) -> None:
        """Run the scanner iff someone listens and no connection is open (lock held)."""
        want = bool(self.subscribers) and self.connections == 0
        if want and self._scanner is None:
            try:
                await self._start_scanner_locked()
            except TransportError as exc:
                if not await self.failed_locked(classify(exc)):
                    raise
                await self._start_scanner_locked()  # once more on the power-cycled adapter
        elif not want and self._scanner is not None:
            await self._stop_scanner_locked()

    async def _start_scanner_locked(self) -> None:
        scanner = BleakScanner(self._on_advert, bluez={"adapter": self.adapter})
        try:
            await scanner.start()
        except BLEAK_FAILURES as exc:
            raise translate(exc, self.adapter, "starting discovery") from exc
        self._scanner = scanner
        self.doctor.scanning(True)
        _LOGGER.debug("%s: discovery started", self.adapter)

    async def _stop_scanner_locked(self) -> None:
        scanner, self._scanner = self._scanner, None
        self.doctor.scanning(False)
        if scanner is None:
            return
        try:
            await scanner.stop()
        except BLEAK_FAILURES as exc:
            # a scanner that cannot stop is logged, not fatal: connecting may still work;
            # an adapter that BlueZ removed (unplugged) has no discovery left to stop
            gone = any(sign in str(exc) for sign in (
                "org.freedesktop.DBus.Error.UnknownObject",  # the adapter was removed
                "No discovery started",  # switched off: discovery ended with it
            ))
            (_LOGGER.debug if gone else _LOGGER.warning)(
                "%s: stopping discovery failed: %s", self.adapter, exc)
        _LOGGER.debug("%s: discovery stopped", self.adapter)

    # --- recovery (ble/recovery.py decides when; this does it, lock held) -------------

    def succeeded(self) -> None:
        """A connection came up."""
        if self.doctor.unhelped:
            _LOGGER.info("%s connects again", self.adapter)
        self.doctor.record_success()

    async def failed_locked(self, trouble: Trouble) -> bool:
        """Count a failure; power-cycle the adapter if that makes it due. True if it did."""
        self.doctor.record(trouble)
        reason = self.doctor.due()
        if reason is None:
            return False
        await self.recover_locked(reason)
        return True

    async def recover_locked(self, reason: RecoveryReason) -> RecoveryEvent:
        """Power-cycle the adapter, discovery stopped around it (lock held)."""
        if self._scanner is not None:
            await self._stop_scanner_locked()
        first = self.doctor.unhelped == 0  # log once per run of recoveries
        if first:
            why = ("keeps answering 'in progress' / 'not ready'"
                   if reason is RecoveryReason.STUCK else "has heard nothing for long")
            _LOGGER.warning("%s %s: power-cycling it", self.adapter, why)
        event = await recover_adapter(self.adapter, reason, escalate=not first)
        self.doctor.recovered()
        log = _LOGGER.warning if first and not event.ok else _LOGGER.debug
        log("%s: recovery by %s %s: %s", self.adapter, event.method,
            "done" if event.ok else "failed", event.detail)
        for listener in self.listeners:
            listener(event)
        return event

    async def _watch_silence(self) -> None:
        """While someone listens: power-cycle an adapter whose discovery hears nothing."""
        period = min(max(self.doctor.settings.silence / 4, 0.05), 10.0)
        while True:
            await asyncio.sleep(period)
            if self.doctor.due() is not RecoveryReason.SILENT:
                continue
            async with self.lock:
                if self.doctor.due() is not RecoveryReason.SILENT:
                    continue
                await self.recover_locked(RecoveryReason.SILENT)
                try:
                    await self.refresh_locked()
                except TransportError as exc:
                    _LOGGER.debug("%s: discovery after recovery failed: %s", self.adapter, exc)

    async def subscribe(self, queue: asyncio.Queue[Advertisement]) -> None:
        async with self.lock:
            self.subscribers.add(queue)
            try:
                await self.refresh_locked()
            except BaseException:
                self.subscribers.discard(queue)
                raise
            if self._watchdog is None:
                self._watchdog = asyncio.create_task(
                    self._watch_silence(), name=f"ble-silence-watch-{self.adapter}"
                )

    async def unsubscribe(self, queue: asyncio.Queue[Advertisement]) -> None:
        async with self.lock:
            self.subscribers.discard(queue)
            await self.refresh_locked()
            watchdog = None
            if not self.subscribers:
                watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AdapterGate]] = (
    weakref.WeakKeyDictionary()
)


def adapter_gate(adapter: str, recovery: RecoverySettings) -> AdapterGate:
    """The gate of an adapter in this event loop; the first transport sets its recovery."""
    per_loop = _GATES.setdefault(asyncio.get_running_loop(), {})
    if adapter not in per_loop:
        per_loop[adapter] = AdapterGate(adapter, recovery)
    return per_loop[adapter]

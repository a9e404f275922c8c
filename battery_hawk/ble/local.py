"""The local adapters of a RadioSet, kept in step with BlueZ.

At start: every adapter BlueZ has (or those `bluetooth.adapters` names, by hciN or MAC)
becomes a radio of the set, each a BleakTransport of its own. Then an AdapterWatch
(ble/adapters.py) follows BlueZ: an adapter it removes (a USB dongle unplugged) leaves
the set, and its devices move to the others; one it adds (plugged in again, or a new
one when every adapter is wanted) joins it. One switched off (Adapter1.Powered false)
leaves after POWER_GRACE seconds if others remain, and joins again when switched on.

Without D-Bus or BlueZ at start, or when BlueZ has none of the wanted adapters, the
wanted ones (hci0 if none is named) stand in as written: their transports say what is
wrong (ble/diagnose.py) when first used; a stand-in gives way to its adapter when
BlueZ adds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from battery_hawk.ble.adapters import AdapterInfo, AdapterWatch, select_adapters
from battery_hawk.ble.link import Transport
from battery_hawk.ble.radios import RadioSet
from battery_hawk.errors import BluetoothUnavailableError

__all__ = ["LocalAdapters"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_ADAPTER = "hci0"
# seconds an adapter may stay off before its devices move: the daemon's own recovery
# switches a stuck adapter off and on again within about a second
POWER_GRACE = 5.0


class LocalAdapters:
    """Adds the wanted local adapters to a RadioSet and follows BlueZ's changes.

    wanted: names or MACs (None: every adapter); make(name): the Transport of one adapter;
    slots: the connections one adapter may hold (bluetooth.max_concurrent_connections).
    """

    def __init__(self, radios: RadioSet, wanted: Sequence[str] | None,
                 make: Callable[[str], Transport], slots: int = 1) -> None:
        self._radios = radios
        self._wanted = None if wanted is None else tuple(wanted)
        self._make = make
        self._slots = slots
        self._watch: AdapterWatch | None = None
        self._off: set[str] = set()  # left the set because they were switched off
        # wanted entries added as they were written while BlueZ had none of them: their
        # transports say what is wrong; each gives way to its adapter when that appears
        self._stand_ins: set[str] = set()
        self._pending: dict[str, asyncio.TimerHandle] = {}

    def _wants(self, adapter: AdapterInfo) -> bool:
        return bool(select_adapters([adapter], self._wanted))

    def _add(self, name: str) -> None:
        if name not in self._radios.names:
            self._radios.add_radio(name, self._make(name), slots=self._slots)

    def _added(self, adapter: AdapterInfo) -> None:
        if not self._wants(adapter):
            return
        for stand_in in [s for s in self._stand_ins if select_adapters([adapter], [s])]:
            self._stand_ins.discard(stand_in)
            if stand_in == adapter.name:
                self._radios.relisten(stand_in)  # now, not after its backoff
            else:
                self._radios.remove_radio(stand_in, None)
        self._add(adapter.name)

    def _removed(self, name: str) -> None:
        self._cancel(name)
        self._off.discard(name)
        self._radios.remove_radio(name, "BlueZ removed it")

    def _cancel(self, name: str) -> None:
        pending = self._pending.pop(name, None)
        if pending is not None:
            pending.cancel()

    def _powered(self, name: str, powered: bool) -> None:
        """Switched off: after POWER_GRACE its devices move (unless it is the only
        adapter, whose errors then say what is wrong). Switched on: listen again."""
        self._cancel(name)
        if powered:
            if name in self._off:
                self._off.discard(name)
                self._add(name)
            else:
                self._radios.relisten(name)
            return
        if name in self._radios.names:
            loop = asyncio.get_running_loop()
            self._pending[name] = loop.call_later(POWER_GRACE, self._switched_off, name)

    def _switched_off(self, name: str) -> None:
        self._pending.pop(name, None)
        if name in self._radios.names and len(self._radios.names) > 1:
            self._off.add(name)
            self._radios.remove_radio(name, "switched off")

    async def start(self) -> tuple[str, ...]:
        """Add the wanted adapters present now and start watching; returns their names."""
        watch = AdapterWatch(self._added, self._removed, self._powered)
        try:
            present = await watch.start()
        except BluetoothUnavailableError as exc:
            _LOGGER.debug("cannot list the Bluetooth adapters: %s", exc)
            for name in self._wanted or (DEFAULT_ADAPTER,):
                self._add(name)
            return self._radios.names
        self._watch = watch
        chosen = select_adapters(present, self._wanted)
        missing = [w for w in self._wanted or ()
                   if not select_adapters(present, [w])]
        if missing:
            known = ", ".join(f"{a.name} ({a.address})" for a in present) or "none"
            _LOGGER.warning("bluetooth.adapters: %s not present (BlueZ has %s); used once it "
                            "appears", ", ".join(missing), known)
        for adapter in chosen:
            self._add(adapter.name)
        if not chosen:  # nothing to use yet: the wanted ones say why when they are used
            for name in self._wanted or (DEFAULT_ADAPTER,):
                self._stand_ins.add(name)
                self._add(name)
        if len(self._radios.names) > 1:
            _LOGGER.info("Bluetooth radios: %s", ", ".join(self._radios.names))
        return self._radios.names

    async def stop(self) -> None:
        for name in list(self._pending):
            self._cancel(name)
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.stop()

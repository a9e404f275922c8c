"""Several radios as one Transport: adverts from all of them, each connection through the
radio that hears the device best.

A radio is anything that fulfils `Transport` (battery_hawk.ble.link): a BleakTransport on
one local adapter, or a remote one such as an ESPHome Bluetooth proxy. `RadioSet` holds
them by name, and is itself a `Transport`, so the coordinators do not know how many
radios there are:

- `advertisements()` merges every radio's adverts, each stamped with its radio's name
  (`Advertisement.radio`). One advert heard on two radios is handed on once: a copy
  from another radio within `dedupe_window` seconds of the first is dropped (its RSSI
  still counts). Every advert updates what the set knows: which radio hears which device,
  at what RSSI, when.
- `connect(address)` ranks the radios by battery_hawk.ble.choice.rank_radios (RSSI and
  its age, recent outcomes of this device on each radio, free slots) and tries the best,
  then the next (at most `max_tries`), each with the full timeout. A radio whose
  adapter is unavailable or not ready (BluetoothUnavailableError, AdapterNotReadyError)
  counts as failing: it goes to the end of every ranking until it hears or connects
  again. A radio still making its first attempt to come up (RadioStartingError: a proxy
  connecting at start-up) is passed over without counting as failing or dropped.
- `add_radio` / `remove_radio` change the set at run time (an adapter plugged in or
  unplugged, a proxy that connects or goes away). Dropping a radio and its return are
  logged once each.

Slots: the set counts the links it holds open through each radio against the radio's
`slots` (or asks the radio's own `free_slots()`), for the ranking only; each radio
enforces its own limit (BleakTransport: `max_concurrent_connections` per adapter).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from battery_hawk.ble._merge import AdvertKey, Merge, pump_backoff
from battery_hawk.ble.choice import ChoiceRules, RadioView, rank_radios
from battery_hawk.ble.link import Link, Transport, latest_per_device
from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    OutOfSlotsError,
    RadioStartingError,
    TransportError,
)
from battery_hawk.logs import log_context
from battery_hawk.models import Advertisement

__all__ = ["RadioSet", "pump_backoff"]  # pump_backoff: from ble/_merge.py

_LOGGER = logging.getLogger(__name__)

DEDUPE_WINDOW = 2.0  # seconds: a copy of an advert from another radio within this is dropped
KEEP_HEARD = 1024  # addresses remembered before the older half is pruned
# seconds in which a radio just added may fail to listen without counting as failing:
# BlueZ tells every client of a new adapter by a signal, and bleak's copy may come after
# ours (connections rank a radio that has heard nothing yet last: they are not affected)
ADD_GRACE = 3.0
FLAP_WINDOW = 60.0  # s: a radio dropped FLAP_COUNT times in this long is flapping
FLAP_COUNT = 3
GRACE_RETRY = 0.25
RADIO_TROUBLE = (BluetoothUnavailableError, AdapterNotReadyError)


@dataclass(slots=True)
class _Radio:
    name: str
    transport: Transport
    slots: int
    free_slots: Callable[[], int] | None
    added_at: float = 0.0
    busy: int = 0  # links open through it now
    failing: str | None = None  # why, while it fails

    def free(self) -> int:
        return self.free_slots() if self.free_slots is not None else self.slots - self.busy


@dataclass(slots=True)
class _Outcome:
    failures: int = 0
    failed_at: float | None = None
    succeeded_at: float | None = None


class RadioSet:
    """Several named radios (each a Transport) as one Transport; see the module doc."""

    def __init__(
        self,
        *,
        rules: ChoiceRules | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_tries: int = 2,
        dedupe_window: float = DEDUPE_WINDOW,
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.rules = rules or ChoiceRules()
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_tries = max_tries
        self._dedupe_window = dedupe_window
        self._radios: dict[str, _Radio] = {}
        self._heard: dict[str, dict[str, tuple[int | None, float]]] = {}
        self._outcomes: dict[tuple[str, str], _Outcome] = {}
        self._last: dict[str, str] = {}
        self._merges: set[Merge] = set()
        self._dropped: set[str] = set()  # radios whose drop was logged, until they return
        self._drops: dict[str, list[float]] = {}  # when each radio dropped, last FLAP_WINDOW
        self._flapping: set[str] = set()  # radios whose drops and returns go to debug

    # --- the radios ------------------------------------------------------------------

    def add_radio(
        self,
        name: str,
        transport: Transport,
        *,
        slots: int = 1,
        free_slots: Callable[[], int] | None = None,
    ) -> None:
        """Use a radio from now on (its adverts are merged at once).

        name: how logs, /api/devices and readings call it (hci1, a proxy's name); slots:
        how many links it may hold at once; free_slots: the radio's own count of free
        slots, if it reports one (an ESPHome proxy does), used instead of counting.
        Raises ValueError if a radio of that name is already in the set.
        """
        if name in self._radios:
            raise ValueError(f"a radio named {name} is already in the set")
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._radios[name] = _Radio(name, transport, slots, free_slots, self._clock())
        if name in self._dropped:
            self._dropped.discard(name)
            self._say_back(name)
        else:
            _LOGGER.debug("radio %s added", name)
        for merge in self._merges:
            self._start_pump(merge, name)

    def remove_radio(self, name: str, reason: str | None = "removed") -> bool:
        """Stop using a radio (its adverts stop; its devices move to the others).

        reason: why, for the one warning that says it was dropped; None for a radio
        that is replaced, not lost (nothing is logged, and adding it again is no
        return). Returns False if there was no such radio. Links open through it are
        not cut.
        """
        radio = self._radios.pop(name, None)
        if radio is None:
            return False
        for merge in self._merges:
            merge.stop(name)
        self._outcomes = {k: v for k, v in self._outcomes.items() if k[1] != name}
        if reason is None:
            self._dropped.discard(name)
            _LOGGER.debug("radio %s removed", name)
        elif name not in self._dropped:
            self._dropped.add(name)
            self._say_dropped(name, f" ({reason})")
        return True

    def relisten(self, name: str) -> None:
        """Open the radio's advert streams afresh (after it was switched off and on, its
        discovery must be started again). Nothing is logged."""
        if name not in self._radios:
            return
        for merge in self._merges:
            merge.stop(name)
            self._start_pump(merge, name)

    @property
    def names(self) -> tuple[str, ...]:
        """The radios in the set, in the order they were added."""
        return tuple(self._radios)

    def transport(self, name: str) -> Transport | None:
        """The Transport of a radio in the set, or None."""
        radio = self._radios.get(name)
        return radio.transport if radio is not None else None

    def failing(self, name: str) -> str | None:
        """Why the radio fails (its adapter unavailable, not ready), or None if it works."""
        radio = self._radios.get(name)
        return radio.failing if radio is not None else None

    def _moving(self, name: str) -> str:
        """Where the devices of a dropped radio go, in words."""
        others = [n for n, r in self._radios.items() if n != name and r.failing is None]
        if others:
            return f"its devices move to {', '.join(others)}"
        return "no other radio works: its devices wait for one"

    def _young(self, radio: _Radio) -> bool:
        return self._clock() - radio.added_at < ADD_GRACE

    def _radio_failed(self, name: str, exc: TransportError) -> None:
        radio = self._radios.get(name)
        if radio is None or radio.failing is not None:
            return
        radio.failing = str(exc)
        if len(self._radios) > 1 and name not in self._dropped:
            self._dropped.add(name)
            self._say_dropped(name, f": {exc}")

    def _radio_ok(self, name: str) -> None:
        radio = self._radios.get(name)
        if radio is None or radio.failing is None:
            return
        radio.failing = None
        if name in self._dropped:
            self._dropped.discard(name)
            self._say_back(name)

    def _say_dropped(self, name: str, why: str) -> None:
        """A drop, said once; a radio that keeps dropping and returning is said once as
        such, and its drops and returns go to debug until it holds for FLAP_WINDOW."""
        now = self._clock()
        drops = [t for t in self._drops.get(name, []) if now - t < FLAP_WINDOW]
        if not drops:
            self._flapping.discard(name)  # steady for a while: say its drops again
        drops.append(now)
        self._drops[name] = drops
        if name in self._flapping:
            _LOGGER.debug("%s dropped%s", name, why)
        elif len(drops) >= FLAP_COUNT:
            self._flapping.add(name)
            _LOGGER.warning("%s keeps dropping and coming back (%d times in %.0f s; now%s); "
                            "its drops and returns are logged at debug until it holds for "
                            "%.0f s", name, len(drops), now - drops[0], why, FLAP_WINDOW)
        else:
            _LOGGER.warning("%s dropped%s; %s", name, why, self._moving(name))

    def _say_back(self, name: str) -> None:
        if name in self._flapping:
            _LOGGER.debug("%s is back", name)
        else:
            _LOGGER.info("%s is back: devices it hears best are read through it again", name)

    # --- what the set knows of a device ------------------------------------------------

    def last_radio(self, address: str) -> str | None:
        """The radio of the last successful connection to the device, or None."""
        return self._last.get(address.upper())

    def hearing(self, address: str) -> dict[str, int]:
        """RSSI (dBm) per radio that heard the device within the rules' heard_within."""
        now = self._clock()
        return {name: rssi for name, (rssi, when) in self._heard.get(address.upper(), {}).items()
                if rssi is not None and now - when <= self.rules.heard_within}

    def views(self, address: str) -> list[RadioView]:
        """What each radio knows of the device: the inputs of the choosing rule."""
        address, now = address.upper(), self._clock()
        heard = self._heard.get(address, {})
        views = []
        for name, radio in self._radios.items():
            rssi, when = heard.get(name, (None, None))
            outcome = self._outcomes.get((address, name), _Outcome())
            views.append(RadioView(
                radio=name, rssi=rssi, heard_age=None if when is None else now - when,
                failures=outcome.failures,
                failure_age=None if outcome.failed_at is None else now - outcome.failed_at,
                success_age=(None if outcome.succeeded_at is None
                             else now - outcome.succeeded_at),
                free_slots=radio.free(),
            ))
        return views

    def choose(self, address: str) -> list[str]:
        """The radios to try for the device, best first; failing radios last."""
        ranked = rank_radios(self.views(address), self.rules)
        return sorted(ranked, key=lambda n: self._radios[n].failing is not None)

    def _candidates(self, address: str) -> list[str]:
        """choose(), narrowed: the radios that heard the device lately if any did; else
        those that ever heard or read it (a device only a proxy hears, while the proxy is
        away, is not searched for on the local adapters); else, for a device no radio
        has heard yet, every radio. A radio that never heard a device would spend its
        connect timeout searching, holding its slot and its scanning."""
        order = self.choose(address)
        horizon = self._clock() - self.rules.heard_within
        heard = self._heard.get(address, {})
        recent = [n for n in order if n in heard and heard[n][1] >= horizon]
        if recent:
            return recent
        ever = [n for n in order if n in heard or self._last.get(address) == n]
        return ever or order

    def _note_heard(self, address: str, radio: str, rssi: int | None, now: float) -> None:
        # the dict is kept in the order addresses were last heard (oldest first): a full
        # table sheds its older half in one go, so a flood of random addresses (phones,
        # trackers) costs O(1) per advert, not a rebuild of the whole table each time
        heard = self._heard.pop(address, None)
        if heard is None:
            heard = {}
            _shed_oldest_half(self._heard)
        heard[radio] = (rssi, now)
        self._heard[address] = heard

    def _record(self, address: str, radio: str, ok: bool) -> None:
        outcome = self._outcomes.setdefault((address, radio), _Outcome())
        now = self._clock()
        if ok:
            outcome.failures, outcome.succeeded_at = 0, now
        else:
            outcome.failures, outcome.failed_at = outcome.failures + 1, now

    # --- Transport: connecting -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, timeout: float | None = None) -> AsyncIterator[Link]:
        """A link through the best radio for the device, else the next (see module doc).

        Raises RadioStartingError when a radio tried is still coming up (the device may
        be reached soon), else the last radio's TransportError when every try failed, and
        BluetoothUnavailableError when the set has no radio at all.
        """
        address = address.upper()
        order = self._candidates(address)
        if address in self._heard or address in self._last:
            order = order[: self._max_tries]
        # else no radio has heard it yet (at start): each may try, a proxy that has not
        # heard it either says so at once, and the adapter that can search is not cut off
        if not order:
            raise BluetoothUnavailableError(
                f"{address}: no Bluetooth radio to reach it (no adapter is present)")
        failure: TransportError | None = None
        starting: RadioStartingError | None = None
        for name in order:
            radio = self._radios.get(name)
            if radio is None:
                continue  # removed while an earlier one was tried
            stack = contextlib.AsyncExitStack()
            radio.busy += 1
            try:
                link = await stack.enter_async_context(
                    radio.transport.connect(address, timeout=timeout))
            except RadioStartingError as exc:  # still coming up: no fault of anyone yet
                radio.busy -= 1
                _LOGGER.debug("%s: %s is not up yet: %s", address, name, exc)
                starting = exc
                continue
            except TransportError as exc:
                radio.busy -= 1
                if isinstance(exc, RADIO_TROUBLE):
                    self._radio_failed(name, exc)  # the radio's fault: it is dropped
                elif not isinstance(exc, OutOfSlotsError):  # full now is not the device's
                    self._record(address, name, ok=False)
                _LOGGER.debug("%s: connecting through %s failed: %s", address, name, exc)
                failure = exc
                continue
            except BaseException:
                radio.busy -= 1
                raise
            self._record(address, name, ok=True)
            self._radio_ok(name)
            self._last[address] = name
            try:
                with log_context(adapter=name):
                    async with stack:
                        yield link
            except TransportError:
                self._record(address, name, ok=False)  # the link failed while in use
                raise
            finally:
                radio.busy -= 1
            return
        # a radio still coming up may yet reach the device: the caller tries again soon
        raise starting or failure or BluetoothUnavailableError(
            f"{address}: every radio went away")

    # --- Transport: listening ------------------------------------------------------------

    def advertisements(self) -> AsyncIterator[Advertisement]:
        """Every radio's adverts, merged and stamped with the radio's name, duplicates
        from other radios dropped. Raises the last TransportError when every radio in
        the set fails to listen."""
        return self._merged()

    async def _merged(self) -> AsyncGenerator[Advertisement, None]:
        merge = Merge()
        self._merges.add(merge)
        for name in self._radios:
            self._start_pump(merge, name)
        try:
            while True:
                item = await merge.queue.get()
                if isinstance(item, TransportError):
                    raise item
                yield item
        finally:
            self._merges.discard(merge)
            await asyncio.shield(merge.close())

    def _start_pump(self, merge: Merge, name: str) -> None:
        merge.pumps[name] = asyncio.create_task(self._pump(merge, name),
                                                name=f"battery-hawk:radio-adverts:{name}")

    async def _pump(self, merge: Merge, name: str) -> None:
        """One radio's adverts into a merge, its stream opened again after a failure."""
        attempt = 0
        while name in self._radios:
            radio = self._radios[name]
            stream = radio.transport.advertisements()
            try:
                async for adv in stream:
                    attempt = 0
                    merge.failed.pop(name, None)
                    self._radio_ok(name)
                    self._deliver(merge, name, adv)
            except TransportError as exc:
                if self._young(radio):
                    _LOGGER.debug("%s: not ready yet: %s", name, exc)
                    await asyncio.sleep(GRACE_RETRY)
                    continue
                merge.failed[name] = exc
                self._radio_failed(name, exc)
                if self._radios and set(self._radios) <= set(merge.failed):
                    merge.put(exc)  # nobody listens any more: the consumer hears why
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            attempt += 1
            await asyncio.sleep(pump_backoff(attempt, self._rng))

    def _deliver(self, merge: Merge, name: str, adv: Advertisement) -> None:
        now = self._clock()
        self._note_heard(adv.address, name, adv.rssi, now)
        key: AdvertKey = (adv.address, tuple(sorted(adv.manufacturer_data.items())),
                          tuple(sorted(adv.service_data.items())))
        seen = merge.delivered.get(key)
        if seen is not None and seen[0] != name and now - seen[1] < self._dedupe_window:
            return  # the same advert, heard on another radio as well
        merge.delivered.pop(key, None)  # last delivered last, as in _note_heard
        _shed_oldest_half(merge.delivered)
        merge.delivered[key] = (name, now)
        merge.put(dataclasses.replace(adv, radio=name))

    async def scan(self, timeout: float) -> list[Advertisement]:
        """One discovery pass on every radio: the latest advert of each device, with the
        RSSI and name of the radio that heard it best."""
        latest = await latest_per_device(self._merged(), timeout)
        best: dict[str, tuple[int, str]] = {}
        for address in latest:
            for name, rssi in self.hearing(address).items():
                if address not in best or rssi > best[address][0]:
                    best[address] = (rssi, name)
        return [dataclasses.replace(adv, rssi=best[a][0], radio=best[a][1]) if a in best
                else adv for a, adv in latest.items()]


def _shed_oldest_half(table: dict[Any, Any]) -> None:
    """At KEEP_HEARD entries, drop the first (oldest) half of an insertion-ordered dict."""
    if len(table) >= KEEP_HEARD:
        for key in list(itertools.islice(table, len(table) - KEEP_HEARD // 2)):
            del table[key]

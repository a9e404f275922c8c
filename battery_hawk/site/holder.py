"""Who holds the device: a Leagend monitor (BM2, BM6, BM7) held by someone else.

A Leagend monitor accepts one connection at a time and stops advertising while it has
one (a connected BLE peripheral in the usual single-link role does not advertise;
the fake BlueZ does the same). So two signs say that another central, usually the
vendor's phone app or another gateway, holds it:

* connecting fails although the monitor was heard advertising a moment ago: it is
  there, in range, and someone else got in first (or keeps getting in between);
* it was heard advertising and then falls silent for longer than it ever is between
  advertisements, while we have not read it either: it is connected to someone.

HolderWatch is pure: time (monotonic seconds) comes in; ``check`` says what we suspect.
HolderBoard keeps one per device and logs each suspicion and its end once.
The App logs a suspicion once, shows it in ``/api/devices`` and publishes it as the
device's ``held_elsewhere`` attribute; a successful read clears it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "LEAGEND_FAMILIES",
    "HeldElsewhere",
    "HolderBoard",
    "HolderWatch",
    "Sign",
    "holder_attributes",
]

_log = logging.getLogger(__name__)

LEAGEND_FAMILIES = frozenset({"bm2", "bm6", "bm7"})


class Sign(StrEnum):
    REFUSES_CONNECTIONS = "refuses_connections"  # advertises, but connecting fails
    STOPPED_ADVERTISING = "stopped_advertising"  # fell silent and was not read either


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """A suspicion: which sign, since when (monotonic s), and what to tell a person."""

    sign: Sign
    since: float

    @property
    def message(self) -> str:
        if self.sign is Sign.REFUSES_CONNECTIONS:
            return ("advertises but refuses connections: the phone app (or another "
                    "gateway) may be connected to it; close the app")
        return ("stopped advertising and cannot be read: the phone app (or another "
                "gateway) may be connected to it; close the app")


class HolderWatch:
    """The signs of one device; ``recent`` and ``silence`` in seconds."""

    def __init__(self, *, recent: float = 60.0, silence: float = 120.0) -> None:
        self.recent = recent  # an advert this fresh means the monitor is there and free
        self.silence = silence  # longer than a monitor is ever quiet between adverts
        self._advert: float | None = None
        self._read: float | None = None
        self._refused: float | None = None  # first failed connect since the last read
        self._suspect: HeldElsewhere | None = None

    @property
    def suspect(self) -> HeldElsewhere | None:
        return self._suspect

    def advert(self, now: float) -> None:
        self._advert = now

    def read_ok(self, now: float) -> None:
        self._read = now
        self._refused = None
        self._suspect = None

    def connect_failed(self, now: float) -> None:
        if self._refused is None:
            self._refused = now
        if self._advert is not None and now - self._advert <= self.recent \
                and self._suspect is None:
            self._suspect = HeldElsewhere(Sign.REFUSES_CONNECTIONS, now)

    def check(self, now: float, scanner_hears: bool = True) -> HeldElsewhere | None:
        """The current suspicion; ``scanner_hears``: the scanner hears other devices (a
        deaf scanner is no sign)."""
        if self._suspect is None and scanner_hears and self._advert is not None:
            quiet = now - self._advert
            unread = self._read is None or self._read < self._advert
            if quiet >= self.silence and unread and self._refused is not None:
                self._suspect = HeldElsewhere(Sign.STOPPED_ADVERTISING, now)
        return self._suspect


class HolderBoard:
    """The watches of every Leagend device, and the changes the App must publish.

    ``changes()`` yields (device_id, suspicion or None) once per raise and once per clear;
    the App logs nothing itself: the board logs each raise and clear once.
    """

    def __init__(self, *, recent: float = 60.0, silence: float = 120.0) -> None:
        self._recent, self._silence = recent, silence
        self._watches: dict[str, HolderWatch] = {}
        self._names: dict[str, str] = {}
        self._said: dict[str, HeldElsewhere | None] = {}
        self._last_advert: float | None = None  # of any device: the scanner hears

    def add(self, device_id: str, name: str, family: str) -> None:
        if family in LEAGEND_FAMILIES:
            self._watches[device_id] = HolderWatch(recent=self._recent, silence=self._silence)
            self._names[device_id] = name

    def forget(self, device_id: str) -> None:
        self._watches.pop(device_id, None)
        self._names.pop(device_id, None)
        self._said.pop(device_id, None)

    def advert(self, device_id: str | None, now: float) -> None:
        self._last_advert = now
        watch = self._watches.get(device_id) if device_id is not None else None
        if watch is not None:
            watch.advert(now)

    def read_ok(self, device_id: str, now: float) -> None:
        if (watch := self._watches.get(device_id)) is not None:
            watch.read_ok(now)

    def connect_failed(self, device_id: str, now: float) -> None:
        if (watch := self._watches.get(device_id)) is not None:
            watch.connect_failed(now)

    def suspect(self, device_id: str) -> HeldElsewhere | None:
        watch = self._watches.get(device_id)
        return None if watch is None else watch.suspect

    def changes(self, now: float, watched: Callable[[str], bool] = lambda _: True
                ) -> list[tuple[str, HeldElsewhere | None]]:
        """Suspicions raised or cleared since the last call, of the devices ``watched``."""
        hears = self._last_advert is not None and now - self._last_advert < self._recent
        out: list[tuple[str, HeldElsewhere | None]] = []
        for did, watch in self._watches.items():
            if not watched(did):
                continue
            now_suspect = watch.check(now, hears)
            before = self._said.get(did)
            if (now_suspect is None) == (before is None):
                continue
            self._said[did] = now_suspect
            name = self._names[did]
            if now_suspect is not None:
                _log.warning("%s: %s", name, now_suspect.message)
            else:
                _log.info("%s: connected again; nobody else holds it now", name)
            out.append((did, now_suspect))
        return out


def holder_attributes(suspect: HeldElsewhere | None) -> dict[str, object]:
    """The device attributes document: ``{"held_elsewhere", "held_sign", "held_message"}``."""
    return {
        "held_elsewhere": suspect is not None,
        "held_sign": None if suspect is None else str(suspect.sign),
        "held_message": None if suspect is None else suspect.message,
    }

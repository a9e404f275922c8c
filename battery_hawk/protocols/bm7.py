"""Leagend BM7, sold as ANCEL "BM300 Pro": the BM6 frames under its own key.

Key ``leagend\\xff\\xfe010000@`` and the shared d15507 request/reply: marcomc/BMGateway
docs ("Known keys", BM300 Pro/BM7 live payload), slydiman/bm7-battery-monitor,
derekpurdy/BM7.
"""

from __future__ import annotations

from typing import ClassVar, Final

from battery_hawk.protocols.bm6 import LeagendPollDriver

__all__ = ["BM7", "BM7_KEY"]

BM7_KEY: Final = b"leagend\xff\xfe010000@"


class BM7(LeagendPollDriver):
    """Leagend BM7 / ANCEL BM300 Pro."""

    family: ClassVar[str] = "bm7"
    model: ClassVar[str] = "BM7"
    default_key: ClassVar[bytes | None] = BM7_KEY
    names: ClassVar[tuple[str, ...]] = ("BM7", "BM300 PRO", "BM300PRO", "BM300")

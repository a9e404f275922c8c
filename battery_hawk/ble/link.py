"""The transport contract the coordinator talks to; bleak and the simulator both fulfil it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from battery_hawk.models import Advertisement

__all__ = ["Link", "NotifyCallback", "RadioAware", "Transport", "latest_per_device"]

NotifyCallback = Callable[[bytes], None]


class Link(Protocol):
    """An open connection to one device. Methods raise TransportError subclasses."""

    @property
    def is_connected(self) -> bool: ...

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None: ...

    async def read(self, char_uuid: str) -> bytes: ...

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None: ...

    async def stop_notify(self, char_uuid: str) -> None: ...

    async def wait_disconnected(self) -> None:
        """Return when the link has dropped (for streaming devices)."""
        ...


class Transport(Protocol):
    """Scans and connects. One per adapter; it serialises scanning and connecting."""

    def connect(
        self, address: str, *, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Link]: ...

    def advertisements(self) -> AsyncIterator[Advertisement]:
        """Advertisements as they arrive, for as long as the caller iterates."""
        ...

    async def scan(self, timeout: float) -> list[Advertisement]:
        """One discovery pass: the latest advertisement of each device seen."""
        ...


@runtime_checkable
class RadioAware(Protocol):
    """A Transport over several radios (RadioSet) that says which one reached a device."""

    def last_radio(self, address: str) -> str | None:
        """The radio of the last successful connection to the device, or None."""
        ...


async def latest_per_device(adverts: AsyncGenerator[Advertisement, None], timeout: float
                            ) -> dict[str, Advertisement]:
    """The latest advertisement of each device ``adverts`` yields within ``timeout``
    seconds, by address (one scan pass); ``adverts`` is closed after."""
    latest: dict[str, Advertisement] = {}
    try:
        async with asyncio.timeout(timeout):
            async for adv in adverts:
                latest[adv.address] = adv
    except TimeoutError:
        pass
    finally:
        await adverts.aclose()
    return latest

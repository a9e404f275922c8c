"""The plumbing of RadioSet.advertisements(): one queue per consumer, fed by one pump
task per radio (the pumps themselves are RadioSet._pump), and the backoff between a
failed radio stream and the next."""

from __future__ import annotations

import asyncio
import random

from battery_hawk.errors import TransportError
from battery_hawk.models import Advertisement

__all__ = ["ADVERT_QUEUE_SIZE", "AdvertKey", "Merge", "pump_backoff"]

ADVERT_QUEUE_SIZE = 256


def pump_backoff(attempt: int, rng: random.Random) -> float:
    """Seconds before a radio's failed advert stream is opened again (attempt from 1):
    1 s doubling to 60 s, +-20 % jitter."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return float(min(60.0, 2.0 ** (attempt - 1)) * rng.uniform(0.8, 1.2))


AdvertKey = tuple[str, tuple[tuple[int, bytes], ...], tuple[tuple[str, bytes], ...]]


class Merge:
    """One consumer of RadioSet.advertisements(): a queue fed by one pump per radio."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Advertisement | TransportError] = asyncio.Queue(
            ADVERT_QUEUE_SIZE)
        self.pumps: dict[str, asyncio.Task[None]] = {}
        self.failed: dict[str, TransportError] = {}
        self.delivered: dict[AdvertKey, tuple[str, float]] = {}

    def put(self, item: Advertisement | TransportError) -> None:
        if self.queue.full():  # a slow consumer loses its oldest adverts, never blocks us
            self.queue.get_nowait()
        self.queue.put_nowait(item)

    def stop(self, name: str) -> None:
        task = self.pumps.pop(name, None)
        self.failed.pop(name, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self.pumps.values())
        self.pumps.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

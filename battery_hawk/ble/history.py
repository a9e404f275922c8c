"""Downloading a Leagend monitor's history over a Link. bleak-free, like exchange.py.

The conversation itself is a pure HistorySession (battery_hawk.protocols.history); this
module moves its bytes: subscribe, write the request, feed every notification, write
what the session asks for next (after the pause a BM2 needs), until the closing marker.

Bounds: the whole download gets ``timeout`` seconds and at most ``max_bytes`` of history
data (checked before each request against what the device announced, and again as data
arrives). A dropped link raises DeviceDisconnectedError, running out of time
ConnectTimeoutError, a corrupt or oversized answer DecodeError; nothing is returned
half, so a caller that retries on its next visit loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from battery_hawk.ble.exchange import _next_frame, _uuid
from battery_hawk.ble.link import Link, Transport
from battery_hawk.errors import (
    ConnectTimeoutError,
    DecodeError,
    DeviceDisconnectedError,
    TransportError,
)
from battery_hawk.protocols.base import Driver
from battery_hawk.protocols.history import (
    HistoryRecord,
    HistorySession,
    history_session,
)

__all__ = ["BM2_PAUSE", "DEFAULT_MAX_BYTES", "download_history", "fetch_history"]

BM2_PAUSE = 1.0  # KrystianD: "required, otherwise BM2 ignores the following packet"
DEFAULT_MAX_BYTES = 4 * 256 * 4  # four pages of 4-byte records: a full day with room


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def download_history(
    link: Link,
    driver: Driver,
    session: HistorySession,
    *,
    timeout: float,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pause: float = BM2_PAUSE,
    now: Callable[[], datetime] = _utc_now,
) -> list[HistoryRecord]:
    """The records of one download over an open link, oldest first (see module docstring).

    ``now`` stamps the newest record when the download completes.
    """
    notify_uuid = _uuid(driver, "notify_uuid")
    write_uuid = _uuid(driver, "write_uuid")
    frames: asyncio.Queue[bytes] = asyncio.Queue()
    dropped = asyncio.ensure_future(link.wait_disconnected())
    try:
        async with asyncio.timeout(timeout):
            _check_size(session, max_bytes)
            await link.start_notify(notify_uuid, frames.put_nowait)
            try:
                await link.write(write_uuid, session.request(), response=True)
                while not session.done:
                    frame = await _next_frame(link, frames, dropped)
                    command = session.feed(frame)
                    _check_size(session, max_bytes)
                    if command is not None:
                        if session.pause:
                            await asyncio.sleep(pause)
                        await link.write(write_uuid, command, response=True)
            finally:
                if link.is_connected:
                    with contextlib.suppress(TransportError):
                        await link.stop_notify(notify_uuid)
    except TimeoutError as exc:
        if not link.is_connected:
            raise DeviceDisconnectedError(
                f"{driver.family}: link dropped during the history download"
            ) from exc
        raise ConnectTimeoutError(
            f"{driver.family}: history download not finished within {timeout:.1f} s "
            f"({session.data_bytes} bytes arrived)"
        ) from exc
    finally:
        dropped.cancel()
    return session.records(now())


def _check_size(session: HistorySession, max_bytes: int) -> None:
    announced = session.announced_bytes
    if announced is not None and announced > max_bytes:
        raise DecodeError(
            f"{session.family} history of {announced} bytes is over the {max_bytes}-byte bound"
        )
    if session.data_bytes > max_bytes + 64:  # the framing blocks are not data
        raise DecodeError(
            f"{session.family} history sent over {max_bytes} bytes; download abandoned"
        )


async def fetch_history(
    transport: Transport,
    address: str,
    driver: Driver,
    *,
    pages: int = 1,
    timeout: float = 30.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pause: float = BM2_PAUSE,
    now: Callable[[], datetime] = _utc_now,
) -> list[HistoryRecord]:
    """Connect, download the history (``pages`` newest pages of a BM6/BM7), disconnect.

    Connecting gets ``timeout`` seconds and the download another ``timeout``; the link is
    closed before returning. ValueError for a family that keeps no history.
    """
    session = history_session(driver, pages)
    async with transport.connect(address, timeout=timeout) as link:
        return await download_history(
            link, driver, session, timeout=timeout, max_bytes=max_bytes, pause=pause, now=now
        )

"""A fake status provider and a helper that speaks raw HTTP/1.1 over asyncio streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from battery_hawk.http import DeviceStatus, HealthSnapshot, HttpServer, Metrics
from battery_hawk.models import BatteryState, DeviceInfo, DeviceReading, Reading

CAR = DeviceInfo("aabbccddee01", "AA:BB:CC:DD:EE:01", "Car battery", "BM6", "Leagend", "bm6")
VAN = DeviceInfo("aabbccddee02", "AA:BB:CC:DD:EE:02", "Van <aux>", "BM2", "Leagend", "bm2")
T0 = datetime(2026, 11, 22, 19, 0, 0, 123000, tzinfo=UTC)
CAR_READING = DeviceReading(
    CAR, Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL), T0, 7, -67
)


@dataclass
class FakeProvider:
    """Hands out whatever the test put in; `broken` makes every call raise."""

    snapshot: HealthSnapshot = field(
        default_factory=lambda: HealthSnapshot(
            mqtt_state="connected", uptime_s=3725.5, loops={"scanner": True}, mqtt_queue_size=0
        )
    )
    statuses: list[DeviceStatus] = field(
        default_factory=lambda: [
            DeviceStatus(CAR, online=True, last_seen=T0, latest=CAR_READING, readings=7),
            DeviceStatus(VAN, online=True, decode_errors=2, last_error="bad frame"),
        ]
    )
    broken: bool = False

    def health(self) -> HealthSnapshot:
        if self.broken:
            raise RuntimeError("provider exploded")
        return self.snapshot

    def devices(self) -> Sequence[DeviceStatus]:
        if self.broken:
            raise RuntimeError("provider exploded")
        return self.statuses


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def raw_request(port: int, data: bytes, *, timeout: float = 5.0) -> Reply:
    """Send bytes as they are and read the whole reply until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split(" ")[1]), headers, body)


async def get(port: int, path: str, method: str = "GET") -> Reply:
    return await raw_request(
        port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode("ascii")
    )


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def server(metrics: Metrics, provider: FakeProvider) -> AsyncIterator[HttpServer]:
    async with HttpServer("127.0.0.1", 0, metrics, provider, request_timeout=1.0) as srv:
        yield srv

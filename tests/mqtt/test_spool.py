"""The durable spool under MQTTInterface, with a real mosquitto behind a gate."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from battery_hawk.mqtt import MQTTInterface, ReconnectionConfig
from battery_hawk.mqtt.queue import QueuedMessage
from battery_hawk.mqtt.spool import SPOOL_FILE, AddResult, Spool, SpoolError, SpoolFile
from tests.support.brokers import Mosquitto, Subscriber, TcpGate

from .conftest import FAST, settings_for

SMALL = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.2,
                           connection_timeout=2, operation_timeout=2, message_queue_size=5)


def rows_on_disk(directory: Path) -> int:
    spool = SpoolFile(directory / SPOOL_FILE, check=False)
    try:
        return spool.count_after(0)
    finally:
        spool.close()


def rows_ever_written(directory: Path) -> int:
    """AUTOINCREMENT's high-water mark: how many rows were ever inserted."""
    spool = SpoolFile(directory / SPOOL_FILE, check=False)
    try:
        found = spool._db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(found[0]) if found else 0
    finally:
        spool.close()


def moved_aside(directory: Path) -> list[bytes]:
    return [p.read_bytes() for p in directory.glob(f"{SPOOL_FILE}.corrupt-*")
            if not p.name.endswith(("-wal", "-shm"))]


async def test_a_flood_of_identical_state_documents_costs_one_slot(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with TcpGate(mosquitto.port) as gate, \
            Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), SMALL,
                              spool=Spool(tmp_path, 1 << 20))
        async with iface:
            await iface.publish("bh/r", "reading-0")
            for _ in range(500):
                await iface.publish("bh/dev/config", {"name": "Car"}, retain=True)
            await iface.publish("bh/r", "reading-1")
            stats = iface.stats
            assert (stats.queue_size, stats.superseded, stats.messages_dropped) == (3, 499, 0)
            assert rows_on_disk(tmp_path) == 3
            gate.open()
            assert await iface.flush(10)
            await sub.wait_count(3)
        assert sub.payloads == [b"reading-0", b'{"name":"Car"}', b"reading-1"]
        assert rows_on_disk(tmp_path) == 0


async def test_state_waiting_on_disk_is_superseded_there_too(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), SMALL, spool=Spool(tmp_path, 1 << 20))
        async with iface:
            for i in range(10):  # fills memory: the rest waits on disk only
                await iface.publish("bh/r", f"r{i}")
            for i in range(20):
                await iface.publish("bh/state", f"s{i}", retain=True)
            assert iface.stats.queue_size == 11
            assert rows_on_disk(tmp_path) == 11
            gate.open()
            assert await iface.flush(10)
            await sub.wait_count(11)
        assert sub.payloads == [f"r{i}".encode() for i in range(10)] + [b"s19"]


async def test_readings_that_cannot_go_out_are_on_disk_before_publish_returns(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), SMALL, spool=Spool(tmp_path, 1 << 20))
        async with iface:
            for i in range(50):
                await iface.publish("bh/r", {"i": i})
                assert rows_on_disk(tmp_path) == i + 1
            stats = iface.stats
            assert (stats.queue_size, stats.spooled, stats.messages_dropped) == (50, 45, 0)
            gate.open()
            assert await iface.flush(20)
            await sub.wait_count(50)
            stats = iface.stats
        assert [json.loads(p)["i"] for p in sub.payloads] == list(range(50))
        assert (stats.messages_published, stats.queue_size, stats.spooled) == (50, 0, 0)
        assert rows_on_disk(tmp_path) == 0  # every row deleted after its acknowledgement


async def test_while_the_link_keeps_pace_readings_do_not_touch_the_disk(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with Subscriber(mosquitto.port, "bh/#") as sub:
        iface = MQTTInterface(settings_for(mosquitto.port), FAST,
                              spool=Spool(tmp_path, 1 << 20))
        async with iface:
            assert await iface.wait_connected(10)
            for i in range(30):
                await iface.publish("bh/r", str(i))
                assert await iface.flush(10)
            await sub.wait_count(30)
            assert iface.stats.spool_enabled
        assert rows_ever_written(tmp_path) == 0


async def test_what_one_run_spooled_the_next_run_delivers_in_order(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.mqtt")
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        first = MQTTInterface(settings_for(gate.port), SMALL, spool=Spool(tmp_path, 1 << 20))
        async with first:
            for i in range(30):
                await first.publish("bh/r", str(i))
        assert any("30 message(s) kept in the spool" in r.getMessage() for r in caplog.records)
        gate.open()
        second = MQTTInterface(settings_for(gate.port), SMALL, spool=Spool(tmp_path, 1 << 20))
        async with second:
            await second.publish("bh/r", "30")
            assert await second.flush(20)
            await sub.wait_count(31)
        assert sub.payloads == [str(i).encode() for i in range(31)]


async def test_at_the_disk_bound_the_oldest_readings_go_counted_and_logged_once(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "battery_hawk.mqtt")
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), SMALL, spool=Spool(tmp_path, 64 * 1024))
        async with iface:
            await iface.publish("bh/state", "kept", retain=True)
            total = 1500
            for i in range(total):
                await iface.publish("bh/r", f"{i:05d}" + "x" * 200)
            stats = iface.stats
            evicted = stats.spool_evicted
            assert evicted > 0
            assert stats.messages_dropped == evicted
            assert stats.queue_size == total + 1 - evicted
            gate.open()
            assert await iface.flush(20)
            await sub.wait_count(total + 1 - evicted)
        readings = [int(p[:5]) for t, p in sub.messages if t == "bh/r"]
        assert readings == list(range(evicted, total))  # exactly the oldest went
        assert ("bh/state", b"kept") in sub.messages  # state is never evicted
        full = [r for r in caplog.records if "is full" in r.getMessage()]
        assert len(full) == 1


async def test_unusable_storage_falls_back_to_memory_and_says_so_once(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "battery_hawk.mqtt")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # storage.path below a file: nothing can be created there
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), SMALL,
                              spool=Spool(blocker / "state", 1 << 20))
        async with iface:
            for i in range(8):
                await iface.publish("bh/r", str(i))
            stats = iface.stats
            assert not stats.spool_enabled
            assert (stats.queue_size, stats.dropped_overflow) == (5, 3)
            gate.open()
            assert await iface.flush(10)
            await sub.wait_count(5)
        assert sub.payloads == [b"3", b"4", b"5", b"6", b"7"]
        said = [r for r in caplog.records if "unusable" in r.getMessage()]
        assert len(said) == 1


async def test_a_corrupt_spool_is_moved_aside_and_the_interface_starts(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.mqtt")
    (tmp_path / SPOOL_FILE).write_bytes(b"this is not an SQLite database" * 100)
    async with Subscriber(mosquitto.port, "bh/#") as sub:
        iface = MQTTInterface(settings_for(mosquitto.port), FAST, spool=Spool(tmp_path, 1 << 20))
        async with iface:
            assert iface.stats.spool_enabled
            await iface.publish("bh/r", "after")
            assert await iface.flush(10)
            await sub.wait_count(1)
    aside = moved_aside(tmp_path)
    assert len(aside) == 1
    assert aside[0].startswith(b"this is not an SQLite database")
    said = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(said) == 1


async def test_a_large_announcement_round_with_the_broker_away_pushes_nothing_out(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # 200 devices x 10 retained documents, announced twice, with readings between them
    config = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.2,
                                connection_timeout=2, operation_timeout=2,
                                message_queue_size=100)
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        iface = MQTTInterface(settings_for(gate.port), config, spool=Spool(tmp_path, 1 << 26))
        async with iface:
            for round_ in range(2):
                for device in range(200):
                    for doc in range(10):
                        await iface.publish(f"bh/config/{device}/{doc}", f"v{round_}",
                                            retain=True)
                    await iface.publish(f"bh/readings/{device}", f"{round_}")
            stats = iface.stats
            assert (stats.messages_dropped, stats.queue_size) == (0, 2000 + 400)
            gate.open()
            assert await iface.flush(60)
            await sub.wait_count(2400, timeout=60)
        configs = {t: p for t, p in sub.messages if t.startswith("bh/config/")}
        assert len(configs) == 2000 and set(configs.values()) == {b"v1"}
        assert sum(t.startswith("bh/readings/") for t, _ in sub.messages) == 400


class FillsUp(Spool):
    """A spool whose disk fills: once ``full`` is set, a write fails, and a delete and an
    add that are in flight together fail together (both wait for the other, a second at
    most), which is how a full disk meets a daemon that publishes while it acknowledges."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        super().__init__(directory, max_bytes)
        self.full = False
        self._together = asyncio.Barrier(2)

    async def _fail_together(self) -> None:
        with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
            async with asyncio.timeout(1):
                await self._together.wait()
        raise SpoolError("database or disk is full")

    async def add(self, messages: Sequence[QueuedMessage], protect_upto: int) -> AddResult:
        if self.full:
            await self._fail_together()
        return await super().add(messages, protect_upto)

    async def delete(self, ids: Sequence[int]) -> None:
        if self.full:
            await self._fail_together()
        await super().delete(ids)


async def test_two_writes_failing_together_say_the_spool_is_unusable_once(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "battery_hawk.mqtt")
    async with TcpGate(mosquitto.port) as gate, Subscriber(mosquitto.port, "bh/#") as sub:
        gate.shut()
        spool = FillsUp(tmp_path, 1 << 20)
        iface = MQTTInterface(settings_for(gate.port), SMALL, spool=spool)
        async with iface:
            for i in range(3):
                await iface.publish("bh/r", str(i))  # on disk: the broker is away
            spool.full = True
            gate.open()  # acknowledgements make the writer delete while we add
            await iface.publish("bh/r", "3")
            assert not iface.stats.spool_enabled
            await iface.publish("bh/r", "4")
            assert await iface.flush(10)
            await sub.wait_count(5)
        said = [r for r in caplog.records if "unusable" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        assert sorted(sub.payloads) == [b"0", b"1", b"2", b"3", b"4"]

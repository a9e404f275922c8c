"""The bleak transport, exchanges and commands: real bleak BlueZ backend, fake BlueZ."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from battery_hawk.ble import (
    BleakTransport,
    CircuitBreaker,
    read_command,
    read_reading,
    scan_command,
    stream_readings,
)
from battery_hawk.ble.breaker import BreakerState
from battery_hawk.errors import (
    CircuitOpenError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    InProgressError,
    TransportError,
)
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import BM2, BM6, BM7, Driver
from tests.fakebluez.controller import FakeBlueZ

BM6_ADDR = "AA:BB:CC:DD:EE:01"
BM7_ADDR = "AA:BB:CC:DD:EE:02"
BM2_ADDR = "AA:BB:CC:DD:EE:03"
VICTRON_ADDR = "AA:BB:CC:DD:EE:04"
BAS_ADDR = "AA:BB:CC:DD:EE:05"
OTHER_ADDR = "AA:BB:CC:DD:EE:06"
VICTRON_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")

CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
COLD = Reading(voltage=11.62, soc=12.0, temperature=-7.0, state=BatteryState.LOW_VOLTAGE)
SHUNT = Reading(
    voltage=12.5,
    soc=87.5,
    current=-1.25,
    consumed_ah=-3.4,
    remaining_mins=600.0,
    aux_voltage=12.7,
    state=BatteryState.DISCHARGING,
)


async def test_scan_finds_and_recognises_each_family(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR, rssi=-50)
    fake_bluez.add_bm7(BM7_ADDR, CAR, rssi=-55)
    fake_bluez.add_bm2(BM2_ADDR, [12.6], rssi=-60)
    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT, rssi=-65)
    fake_bluez.add_battery_service(BAS_ADDR, 76, rssi=-70)
    fake_bluez.add_device(OTHER_ADDR, "Toothbrush", rssi=-80)

    results = await scan_command("hci0", timeout=1.0)

    families = {r.advertisement.address: r.family for r in results}
    assert families == {
        BM6_ADDR: "bm6",
        BM7_ADDR: "bm7",
        BM2_ADDR: "bm2",
        VICTRON_ADDR: "victron",
        BAS_ADDR: "bas",
        OTHER_ADDR: None,
    }
    assert [r.advertisement.rssi for r in results] == [-50, -55, -60, -65, -70, -80]
    victron = next(r.advertisement for r in results if r.family == "victron")
    assert 0x02E1 in victron.manufacturer_data
    assert fake_bluez.adapter_state()["discovering"] is False


async def test_bm6_poll_returns_the_configured_reading(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    driver = BM6()

    async with BleakTransport("hci0", connect_timeout=5).connect(BM6_ADDR) as link:
        reading = await read_reading(link, driver, timeout=5)

    assert reading == CAR
    assert fake_bluez.writes(BM6_ADDR) == [driver.poll_command()]
    assert fake_bluez.device_state(BM6_ADDR)["connected"] is False


async def test_bm6_echo_is_skipped_and_negative_temperature_kept(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, COLD, echo=True)

    assert await read_command("hci0", BM6_ADDR, "bm6", None, timeout=5) == COLD


async def test_bm7_read_command_connects_and_polls(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm7(BM7_ADDR, CAR)

    assert await read_command("hci0", BM7_ADDR, "bm7", None, timeout=5) == CAR


async def test_wrong_key_surfaces_as_decode_error(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.errors import DecodeError

    fake_bluez.add_bm6(BM6_ADDR, CAR, key=b"0123456789abcdef")
    with pytest.raises(DecodeError):
        # the unit ignores our request (wrong key) so nothing would come: reply anyway
        fake_bluez.clear_responders(BM6_ADDR)
        fake_bluez.add_responder(BM6_ADDR, BM6.write_uuid or "", BM6.notify_uuid or "",
                                 [b"\x00" * 16])
        await read_command("hci0", BM6_ADDR, "bm6", None, timeout=5)


async def test_battery_service_is_read(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_battery_service(BAS_ADDR, 76)

    assert await read_command("hci0", BAS_ADDR, "bas", None, timeout=5) == Reading(soc=76.0)


async def test_bm2_notifications_stream_readings(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm2(BM2_ADDR, [12.5, 12.61, 12.72], interval=0.02)
    received: list[Reading] = []

    async with BleakTransport("hci0", connect_timeout=5).connect(BM2_ADDR) as link:
        async with asyncio.timeout(5), contextlib.aclosing(stream_readings(link, BM2())) as stream:
            async for reading in stream:
                received.append(reading)
                if len(received) == 4:
                    break
        assert fake_bluez.device_state(BM2_ADDR)["notifying"] == 0

    assert received == [Reading(voltage=v) for v in (12.5, 12.61, 12.72, 12.5)]


async def test_bm2_stream_ends_when_the_link_drops(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm2(BM2_ADDR, [12.5], interval=0.02)
    count = 0

    async with BleakTransport("hci0", connect_timeout=5).connect(BM2_ADDR) as link:
        async with asyncio.timeout(5):
            async for _reading in stream_readings(link, BM2()):
                count += 1
                if count == 2:
                    fake_bluez.drop_link(BM2_ADDR)
        assert not link.is_connected

    assert count >= 2


async def test_victron_advert_decodes_without_connecting(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT)

    reading = await read_command("hci0", VICTRON_ADDR, "victron", VICTRON_KEY, timeout=5)

    assert reading == SHUNT
    assert fake_bluez.device_state(VICTRON_ADDR)["connects"] == 0


async def test_link_dropped_mid_read_is_a_typed_error_then_a_retry_works(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.drop_link_on_next_write(BM6_ADDR)
    transport = BleakTransport("hci0", connect_timeout=5)

    with pytest.raises(DeviceDisconnectedError):
        async with transport.connect(BM6_ADDR) as link:
            await read_reading(link, BM6(), timeout=5)

    async with transport.connect(BM6_ADDR) as link:
        assert await read_reading(link, BM6(), timeout=5) == CAR


@pytest.mark.parametrize(
    ("error_name", "message"),
    [
        ("org.bluez.Error.InProgress", "In Progress"),
        ("org.bluez.Error.Failed", "Operation already in progress"),
        ("org.bluez.Error.Failed", "le-connection-abort-by-local"),
        ("org.bluez.Error.Failed", "br-connection-canceled"),
        ("org.bluez.Error.Failed", "Software caused connection abort"),
    ],
)
async def test_every_form_of_in_progress_is_absorbed_by_a_retry(
    fake_bluez: FakeBlueZ, error_name: str, message: str
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.fail_next_connect(BM6_ADDR, error_name, message=message)
    transport = BleakTransport("hci0", connect_timeout=5, in_progress_backoff=0.05)

    async with transport.connect(BM6_ADDR) as link:
        assert await read_reading(link, BM6(), timeout=5) == CAR

    state = fake_bluez.device_state(BM6_ADDR)
    assert state["pending_failures"] == 0
    assert state["connects"] == 1


async def test_failed_already_in_progress_exhausts_like_in_progress(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.fail_next_connect(BM6_ADDR, "org.bluez.Error.Failed", count=2,
                                 message="Operation already in progress")
    transport = BleakTransport(
        "hci0", connect_timeout=5, in_progress_retries=1, in_progress_backoff=0.05
    )

    with pytest.raises(InProgressError, match="Operation already in progress"):
        async with transport.connect(BM6_ADDR):
            pass
    assert fake_bluez.device_state(BM6_ADDR)["pending_failures"] == 0


async def test_persistent_in_progress_raises_in_progress_then_recovers(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    transport = BleakTransport(
        "hci0", connect_timeout=5, in_progress_retries=1, in_progress_backoff=0.05
    )
    fake_bluez.fail_next_connect(BM6_ADDR, "org.bluez.Error.InProgress", count=2)

    with pytest.raises(InProgressError):
        async with transport.connect(BM6_ADDR):
            pass
    assert fake_bluez.device_state(BM6_ADDR)["pending_failures"] == 0

    async with transport.connect(BM6_ADDR) as link:
        assert await read_reading(link, BM6(), timeout=5) == CAR


async def test_not_permitted_is_not_retried(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.errors import NotPermittedError

    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.fail_next_connect(BM6_ADDR, "org.bluez.Error.NotPermitted", message="no",
                                 count=2)

    with pytest.raises(NotPermittedError, match="NotPermitted"):
        async with BleakTransport("hci0", connect_timeout=5).connect(BM6_ADDR):
            pass
    assert fake_bluez.device_state(BM6_ADDR)["pending_failures"] == 1


async def test_unknown_address_is_device_not_found(fake_bluez: FakeBlueZ) -> None:
    with pytest.raises(DeviceNotFoundError):
        async with BleakTransport("hci0").connect(OTHER_ADDR, timeout=0.4):
            pass


async def test_breaker_opens_after_threshold_and_closes_after_recovery(
    fake_bluez: FakeBlueZ,
) -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=30, clock=lambda: now[0])
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.fail_next_connect(BM6_ADDR, "org.bluez.Error.NotPermitted", count=2)
    transport = BleakTransport("hci0", connect_timeout=5)

    async def poll() -> Reading:
        breaker.check()
        try:
            async with transport.connect(BM6_ADDR) as link:
                reading = await read_reading(link, BM6(), timeout=5)
        except TransportError:
            breaker.record_failure()
            raise
        breaker.record_success()
        return reading

    for _ in range(2):
        with pytest.raises(TransportError):
            await poll()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        await poll()
    assert fake_bluez.device_state(BM6_ADDR)["connects"] == 0  # no radio time spent

    now[0] += 30
    assert await poll() == CAR
    assert breaker.state is BreakerState.CLOSED


async def test_discovery_pauses_while_a_connection_is_held(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.add_device(OTHER_ADDR, "Toothbrush")
    transport = BleakTransport("hci0", connect_timeout=5)
    adverts = transport.advertisements()
    try:
        async with asyncio.timeout(5):
            await anext(adverts)  # discovery is running
        assert fake_bluez.adapter_state()["discovering"] is True

        async with transport.connect(BM6_ADDR) as link:
            assert fake_bluez.adapter_state()["discovering"] is False
            assert await read_reading(link, BM6(), timeout=5) == CAR

        assert fake_bluez.adapter_state()["discovering"] is True
        async with asyncio.timeout(5):
            assert (await anext(adverts)).address in {BM6_ADDR, OTHER_ADDR}
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]
    assert fake_bluez.adapter_state()["discovering"] is False


async def test_adapter_may_be_given_by_its_address(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    transport = BleakTransport("00:1a:7d:da:71:01", connect_timeout=5)

    assert await transport.adapter_name() == "hci0"
    async with transport.connect(BM6_ADDR) as link:
        assert await read_reading(link, BM6(), timeout=5) == CAR


async def test_missing_adapter_is_a_transport_error(fake_bluez: FakeBlueZ) -> None:
    with pytest.raises(TransportError, match="hci7"):
        await BleakTransport("hci7").scan(0.2)
    with pytest.raises(TransportError, match="no Bluetooth adapter"):
        await BleakTransport("11:22:33:44:55:66").scan(0.2)


async def test_passive_adverts_follow_the_device(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.ble import reading_from_advertisement
    from battery_hawk.protocols import Victron

    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT)
    driver = Victron(VICTRON_KEY)
    later = Reading(voltage=12.25, soc=80.0, current=2.5, consumed_ah=-3.4,
                    remaining_mins=600.0, aux_voltage=12.7, state=BatteryState.CHARGING)
    adverts = BleakTransport("hci0").advertisements()
    seen: list[Reading] = []
    try:
        async with asyncio.timeout(5):
            async for adv in adverts:
                reading = reading_from_advertisement(adv, driver)
                if not seen or seen[-1] != reading:
                    seen.append(reading)
                if len(seen) == 1:
                    fake_bluez.set_victron_reading(VICTRON_ADDR, VICTRON_KEY, later)
                if reading == later:
                    break
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]
    assert seen == [SHUNT, later]


def test_a_subprocess_reaches_the_fake_through_its_env(fake_bluez: FakeBlueZ) -> None:
    """How the end-to-end test runs the daemon: env=fake_bluez.env()."""
    import subprocess
    import sys

    fake_bluez.add_bm6(BM6_ADDR, CAR)
    code = (
        "import asyncio\n"
        "from battery_hawk.ble import read_command\n"
        f"print(asyncio.run(read_command('hci0', '{BM6_ADDR}', 'bm6', None, 5)).voltage)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=fake_bluez.env(), capture_output=True, timeout=60,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "12.84"


async def test_bm6_firmware_version_is_queried(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.ble import query_firmware

    fake_bluez.add_bm6(BM6_ADDR, CAR)
    async with BleakTransport("hci0", connect_timeout=5).connect(BM6_ADDR) as link:
        assert await query_firmware(link, BM6(), timeout=5) == "01080005"
        assert await read_reading(link, BM6(), timeout=5) == CAR  # same link, still usable


async def test_one_connection_at_a_time_per_adapter(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.add_bm7(BM7_ADDR, COLD)
    transport = BleakTransport("hci0", connect_timeout=5, max_concurrent_connections=1)

    async def read(address: str, other: str, driver: Driver) -> tuple[Reading, bool]:
        async with transport.connect(address) as link:
            other_connected = fake_bluez.device_state(other)["connected"]
            return await read_reading(link, driver, timeout=5), other_connected

    async with asyncio.timeout(10):
        results = await asyncio.gather(
            read(BM6_ADDR, BM7_ADDR, BM6()), read(BM7_ADDR, BM6_ADDR, BM7())
        )

    assert list(results) == [(CAR, False), (COLD, False)]


def test_missing_dbus_daemon_is_a_failure_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakebluez.controller import FakeBlueZError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FakeBlueZError, match="dbus-daemon is missing"):
        FakeBlueZ().start()


async def test_busy_adapter_gives_out_of_slots_within_the_timeout(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.errors import OutOfSlotsError

    fake_bluez.add_bm6(BM6_ADDR, CAR)
    fake_bluez.add_bm7(BM7_ADDR, COLD)
    transport = BleakTransport("hci0", connect_timeout=5, max_concurrent_connections=1)

    async with transport.connect(BM6_ADDR):
        with pytest.raises(OutOfSlotsError):
            async with transport.connect(BM7_ADDR, timeout=0.2):
                pass
    assert fake_bluez.device_state(BM7_ADDR)["connects"] == 0

"""A stuck adapter heals itself: the doctor's arithmetic (pure) and the power cycle over
the fake BlueZ (real bleak backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from battery_hawk.ble import BleakTransport, read_reading
from battery_hawk.ble._errors import Trouble
from battery_hawk.ble.recovery import (
    AdapterDoctor,
    RecoveryEvent,
    RecoveryReason,
    RecoverySettings,
    dbus_power_cycle,
)
from battery_hawk.errors import AdapterNotReadyError, InProgressError
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols import BM6, Victron
from tests.fakebluez.controller import FakeBlueZ

BM6_ADDR = "AA:BB:CC:DD:EE:11"
VICTRON_ADDR = "AA:BB:CC:DD:EE:14"
VICTRON_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0, state=BatteryState.NORMAL)
SHUNT = Reading(voltage=12.5, soc=87.5, current=-1.25, consumed_ah=-3.4, remaining_mins=600.0,
                aux_voltage=12.7, state=BatteryState.DISCHARGING)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- when (pure) -------------------------------------------------------------------------


def test_repeated_in_progress_makes_a_recovery_due_and_other_troubles_do_not() -> None:
    doctor = AdapterDoctor(RecoverySettings(stuck_after=3), clock=Clock())
    for trouble in (Trouble.NOT_FOUND, Trouble.TIMEOUT, Trouble.AUTHENTICATION):
        doctor.record(trouble)
    assert doctor.due() is None
    doctor.record(Trouble.IN_PROGRESS)
    doctor.record(Trouble.NOT_READY)
    assert doctor.due() is None
    doctor.record(Trouble.IN_PROGRESS)
    assert doctor.due() is RecoveryReason.STUCK


def test_a_success_resets_the_count() -> None:
    doctor = AdapterDoctor(RecoverySettings(stuck_after=2), clock=Clock())
    doctor.record(Trouble.IN_PROGRESS)
    doctor.record_success()
    doctor.record(Trouble.IN_PROGRESS)
    assert doctor.due() is None


def test_silence_counts_only_while_discovery_runs() -> None:
    clock = Clock()
    doctor = AdapterDoctor(RecoverySettings(silence=60), clock=clock)
    clock.now += 100
    assert doctor.due() is None  # not scanning
    doctor.scanning(True)
    clock.now += 59
    doctor.heard()
    clock.now += 59
    assert doctor.due() is None
    clock.now += 1
    assert doctor.due() is RecoveryReason.SILENT
    doctor.scanning(False)
    assert doctor.due() is None


def test_a_restarted_scanner_keeps_counting_the_silence_but_pauses_do_not_count() -> None:
    clock = Clock()
    doctor = AdapterDoctor(RecoverySettings(silence=60), clock=clock)
    doctor.scanning(True)
    clock.now += 40
    doctor.scanning(False)  # the daemon restarts discovery, or connects for a while
    clock.now += 1000
    doctor.scanning(True)
    clock.now += 19
    assert doctor.due() is None
    clock.now += 1
    assert doctor.due() is RecoveryReason.SILENT


def test_recoveries_are_rate_limited_and_back_off_while_they_do_not_help() -> None:
    clock = Clock()
    doctor = AdapterDoctor(RecoverySettings(stuck_after=1, min_interval=100, max_interval=250),
                           clock=clock)
    gaps = []
    last = clock.now
    for _ in range(4):
        while True:
            doctor.record(Trouble.IN_PROGRESS)
            if doctor.due() is not None:
                break
            clock.now += 1
        gaps.append(clock.now - last)
        last = clock.now
        doctor.recovered()
    assert gaps == [0, 100, 200, 250]
    assert doctor.unhelped == 4

    doctor.record_success()  # it works again: the next episode starts at min_interval
    assert doctor.unhelped == 0
    clock.now += 250
    doctor.record(Trouble.IN_PROGRESS)
    assert doctor.due() is RecoveryReason.STUCK
    doctor.recovered()
    clock.now += 100
    doctor.record(Trouble.IN_PROGRESS)
    assert doctor.due() is RecoveryReason.STUCK


def test_disabled_recovery_is_never_due() -> None:
    doctor = AdapterDoctor(RecoverySettings(stuck_after=1, enabled=False), clock=Clock())
    doctor.record(Trouble.IN_PROGRESS)
    assert doctor.due() is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RecoverySettings(stuck_after=0)
    with pytest.raises(ValueError):
        RecoverySettings(min_interval=10, max_interval=5)


# --- how (fake BlueZ) ------------------------------------------------------------------


async def test_adapter_stuck_in_progress_is_power_cycled_and_the_read_goes_through(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    events: list[RecoveryEvent] = []
    transport = BleakTransport("hci0", connect_timeout=10, in_progress_backoff=0.05,
                               recovery=RecoverySettings(stuck_after=3),
                               on_recovery=events.append)
    fake_bluez.set_adapter_stuck("in-progress")

    async with transport.connect(BM6_ADDR) as link:
        assert await read_reading(link, BM6(), timeout=5) == CAR

    adapter = fake_bluez.adapter_state()
    assert adapter["power_log"] == ["off", "on"]
    assert adapter["powered"] is True
    assert adapter["stuck"] == ""
    assert [(e.adapter, e.reason, e.method, e.ok) for e in events] == [
        ("hci0", RecoveryReason.STUCK, "dbus", True)]


async def test_below_the_threshold_nothing_is_power_cycled(fake_bluez: FakeBlueZ) -> None:
    fake_bluez.add_bm6(BM6_ADDR, CAR)
    transport = BleakTransport("hci0", connect_timeout=5, in_progress_retries=1,
                               in_progress_backoff=0.05, recovery=RecoverySettings(stuck_after=3))
    fake_bluez.fail_next_connect(BM6_ADDR, "org.bluez.Error.InProgress", count=2)

    with pytest.raises(InProgressError):
        async with transport.connect(BM6_ADDR):
            pass
    assert fake_bluez.adapter_state()["power_log"] == []


async def test_a_silent_scanner_is_power_cycled_and_adverts_resume(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.ble import reading_from_advertisement

    fake_bluez.add_victron(VICTRON_ADDR, VICTRON_KEY, SHUNT)
    fake_bluez.set_adapter_stuck("silent")
    events: list[RecoveryEvent] = []
    transport = BleakTransport("hci0", recovery=RecoverySettings(silence=0.5),
                               on_recovery=events.append)
    adverts = transport.advertisements()
    try:
        async with asyncio.timeout(15):
            async for adv in adverts:
                if adv.address == VICTRON_ADDR:
                    assert reading_from_advertisement(adv, Victron(VICTRON_KEY)) == SHUNT
                    break
    finally:
        await adverts.aclose()  # type: ignore[attr-defined]
    assert fake_bluez.adapter_state()["power_log"] == ["off", "on"]
    assert [(e.reason, e.method, e.ok) for e in events] == [(RecoveryReason.SILENT, "dbus", True)]
    assert fake_bluez.adapter_state()["discovering"] is False


async def test_rfkill_blocked_adapter_cannot_be_powered_and_says_so(
    fake_bluez: FakeBlueZ,
) -> None:
    fake_bluez.set_adapter_power(False, rfkill=True)

    with pytest.raises(AdapterNotReadyError, match="rfkill unblock bluetooth"):
        await dbus_power_cycle("hci0", timeout=5)
    assert fake_bluez.adapter_state()["power_log"] == ["off"]


def test_recovery_is_configured_under_bluetooth_recovery(tmp_path: Path) -> None:
    from battery_hawk.config import load_config
    from battery_hawk.errors import ConfigError

    base = ("mqtt: {broker: localhost}\n"
            "devices: [{address: 'C8:47:80:00:00:01', type: bm6}]\n")
    good = tmp_path / "good.yaml"
    good.write_text(base + "bluetooth: {recovery: {enabled: false, stuck_after: 5}}\n")
    recovery = load_config(str(good)).bluetooth.recovery
    assert (recovery.enabled, recovery.stuck_after, recovery.silence) == (False, 5, 300.0)

    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "bluetooth: {recovery: {stuck_after: 0}}\n")
    with pytest.raises(ConfigError, match=r"bluetooth\.recovery\.stuck_after"):
        load_config(str(bad))


async def test_on_real_hardware_a_refused_power_cycle_falls_back_to_auto_recovery(
    fake_bluez: FakeBlueZ,
) -> None:
    from battery_hawk.ble.recovery import recover_adapter

    fake_bluez.set_adapter_power(False, rfkill=True)  # D-Bus cannot switch it on
    asked: list[tuple[str, str, bool]] = []

    async def auto_recover(adapter: str, mac: str, gone_silent: bool) -> bool:
        asked.append((adapter, mac, gone_silent))
        return True

    event = await recover_adapter("hci0", RecoveryReason.SILENT, hardware=lambda _: True,
                                  auto_recover=auto_recover)

    assert asked == [("hci0", "00:1A:7D:DA:71:01", True)]
    assert (event.method, event.ok) == ("bluetooth-auto-recovery", True)
    assert "Blocked through rfkill" in event.detail


async def test_without_hardware_there_is_no_fallback(fake_bluez: FakeBlueZ) -> None:
    from battery_hawk.ble.recovery import recover_adapter

    fake_bluez.set_adapter_power(False, rfkill=True)

    async def auto_recover(adapter: str, mac: str, gone_silent: bool) -> bool:
        raise AssertionError("bluetooth-auto-recovery needs real hardware")

    event = await recover_adapter("hci0", RecoveryReason.STUCK, hardware=lambda _: False,
                                  auto_recover=auto_recover)
    assert (event.method, event.ok) == ("dbus", False)
    assert "rfkill unblock bluetooth" in event.detail


async def test_an_escalated_recovery_goes_straight_to_auto_recovery(
    fake_bluez: FakeBlueZ,
) -> None:
    from battery_hawk.ble.recovery import recover_adapter

    asked: list[bool] = []

    async def auto_recover(adapter: str, mac: str, gone_silent: bool) -> bool:
        asked.append(gone_silent)
        return False

    event = await recover_adapter("hci0", RecoveryReason.STUCK, escalate=True,
                                  hardware=lambda _: True, auto_recover=auto_recover)
    assert asked == [False]
    assert (event.method, event.ok) == ("bluetooth-auto-recovery", False)
    assert fake_bluez.adapter_state()["power_log"] == []  # D-Bus was not tried again

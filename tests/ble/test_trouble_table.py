"""The BlueZ / bleak error table: every form of a trouble lands in its class (pure)."""

from __future__ import annotations

import random

import bleak_retry_connector as brc
import pytest
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
)

from battery_hawk.ble._errors import (
    TROUBLES,
    RetryPolicy,
    Trouble,
    classify,
    retry_delay,
    translate,
)
from battery_hawk.errors import (
    AdapterNotReadyError,
    AuthenticationFailedError,
    BluetoothUnavailableError,
    InProgressError,
    NotPermittedError,
    TransportError,
)


def wrapped(inner: BaseException) -> BaseException:
    """What establish_connection(max_attempts=1) raises around a BlueZ error."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise brc.BleakConnectionError("BM6 - AA:BB: Failed to connect after 1 attempt(s)") \
                from exc
    except BaseException as outer:
        return outer


IN_PROGRESS_FORMS = [
    BleakDBusError("org.bluez.Error.InProgress", ["In Progress"]),
    BleakDBusError("org.bluez.Error.Failed", ["Operation already in progress"]),
    BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"]),
    BleakDBusError("org.bluez.Error.Failed", ["br-connection-canceled"]),
    BleakDBusError("org.bluez.Error.Failed", ["Software caused connection abort"]),
    brc.BleakAbortedError("x: Failed to connect: le-connection-abort-by-local: Interference"),
]


@pytest.mark.parametrize("exc", IN_PROGRESS_FORMS, ids=str)
def test_every_form_of_in_progress_is_one_class(exc: BaseException) -> None:
    assert classify(exc) is Trouble.IN_PROGRESS
    assert classify(wrapped(exc)) is Trouble.IN_PROGRESS
    assert isinstance(translate(wrapped(exc), "AA:BB", "connect"), InProgressError)


@pytest.mark.parametrize(
    ("exc", "trouble"),
    [
        (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]), Trouble.NOT_READY),
        (BleakDBusError("org.bluez.Error.Failed", ["Blocked through rfkill"]), Trouble.NOT_READY),
        (BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.",
                                         BleakBluetoothNotAvailableReason.POWERED_OFF),
         Trouble.NOT_READY),
        (FileNotFoundError(2, "No such file or directory"), Trouble.UNAVAILABLE),
        (ConnectionRefusedError(111, "Connection refused"), Trouble.UNAVAILABLE),
        (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown",
                        ["The name org.bluez was not provided by any .service files"]),
         Trouble.UNAVAILABLE),
        (BleakError("adapter 'hci7' not found"), Trouble.UNAVAILABLE),
        (BleakBluetoothNotAvailableError("No Bluetooth adapters found.",
                                         BleakBluetoothNotAvailableReason.NO_BLUETOOTH),
         Trouble.UNAVAILABLE),
        (BleakDeviceNotFoundError("AA:BB", "Device with address AA:BB was not found."),
         Trouble.NOT_FOUND),
        (brc.BleakNotFoundError("x: Failed to connect"), Trouble.NOT_FOUND),
        (BleakDBusError("org.freedesktop.DBus.Error.UnknownObject", ["Method ..."]),
         Trouble.NOT_FOUND),
        (brc.BleakOutOfConnectionSlotsError("x: out of connection slots"), Trouble.OUT_OF_SLOTS),
        (BleakError("No backend with an available connection slot"), Trouble.OUT_OF_SLOTS),
        (BleakDBusError("org.bluez.Error.NotPermitted", ["Not Permitted"]),
         Trouble.NOT_PERMITTED),
        (BleakDBusError("org.freedesktop.DBus.Error.AccessDenied", ["denied"]),
         Trouble.NOT_PERMITTED),
        (PermissionError(13, "Permission denied"), Trouble.NOT_PERMITTED),
        (BleakDBusError("org.bluez.Error.AuthenticationFailed", ["Authentication Failed"]),
         Trouble.AUTHENTICATION),
        (BleakDBusError("org.bluez.Error.Failed", ["Operation failed with ATT error: 0x05"]),
         Trouble.AUTHENTICATION),
        (BleakDBusError("org.bluez.Error.NotConnected", ["Not Connected"]),
         Trouble.DISCONNECTED),
        (EOFError(), Trouble.DISCONNECTED),
        (TimeoutError(), Trouble.TIMEOUT),
        (BleakDBusError("org.bluez.Error.Failed", ["something odd"]), Trouble.OTHER),
    ],
    ids=lambda value: value.value if isinstance(value, Trouble) else type(value).__name__,
)
def test_each_error_lands_in_its_class(exc: BaseException, trouble: Trouble) -> None:
    assert classify(exc) is trouble
    assert classify(wrapped(exc)) is trouble


@pytest.mark.parametrize(
    ("exc", "error", "advice"),
    [
        (BleakDBusError("org.bluez.Error.NotReady", ["Resource Not Ready"]),
         AdapterNotReadyError, "bluetoothctl power on"),
        (BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", ["no org.bluez"]),
         BluetoothUnavailableError, "systemctl status bluetooth"),
        (BleakDBusError("org.bluez.Error.NotPermitted", ["Not Permitted"]),
         NotPermittedError, "bluetooth` group"),
        (BleakDBusError("org.bluez.Error.AuthenticationRejected", ["Rejected"]),
         AuthenticationFailedError, "pairing"),
    ],
)
def test_translation_gives_the_typed_error_and_what_to_do(
    exc: BaseException, error: type[TransportError], advice: str
) -> None:
    translated = translate(wrapped(exc), "AA:BB", "connect")
    assert type(translated) is error
    assert advice in str(translated)


def test_a_typed_error_of_ours_keeps_its_class() -> None:
    assert classify(InProgressError("busy")) is Trouble.IN_PROGRESS
    assert translate(AdapterNotReadyError("off"), "x", "y").args == ("off",)


def test_only_adapter_troubles_heal_and_only_transient_ones_retry() -> None:
    policies = {row.trouble: row.policy for row in TROUBLES}
    assert {t for t, p in policies.items() if p.heals} == {Trouble.IN_PROGRESS, Trouble.NOT_READY}
    assert {t for t, p in policies.items() if p.retries} == {
        Trouble.IN_PROGRESS, Trouble.NOT_READY, Trouble.OUT_OF_SLOTS, Trouble.DISCONNECTED}
    assert policies[Trouble.OUT_OF_SLOTS].backoff == brc.BLEAK_OUT_OF_SLOTS_BACKOFF_TIME


def test_retry_delay_doubles_within_its_jitter() -> None:
    policy = RetryPolicy(retries=3, backoff=0.5)
    delays = [retry_delay(policy, n, random.Random(7)) for n in (1, 2, 3)]
    for n, delay in enumerate(delays):
        assert 0.8 * 0.5 * 2**n <= delay <= 1.2 * 0.5 * 2**n
    assert delays == [retry_delay(policy, n, random.Random(7)) for n in (1, 2, 3)]
    with pytest.raises(ValueError):
        retry_delay(policy, 0, random.Random())

"""bleak / BlueZ / D-Bus failures classified by meaning, each class with its retry policy.

One table, TROUBLES, says for every class of trouble how it is recognised, which
TransportError it becomes, how often and how fast a connect retries it, whether it
counts towards healing a stuck adapter, and what the user can do about it.

Recognition looks at the whole exception chain (bleak-retry-connector wraps BlueZ's
BleakDBusError in its own typed errors): the D-Bus error names first, then exception
types, then message fragments. The fragments bleak-retry-connector already knows are
taken from its tables (TRANSIENT_ERRORS, OUT_OF_SLOTS_ERRORS, DEVICE_MISSING_ERRORS,
CONNECTION_CANCELLED_ERRORS) and its backoff constants, not repeated here.

The "in progress" family: BlueZ says the same thing several ways. Sources: BlueZ
src/error.c (btd_error_in_progress: org.bluez.Error.InProgress "In Progress"), the
org.bluez.Error.Failed "Operation already in progress" that bluetoothd passes up from
the kernel (EALREADY), "le-connection-abort-by-local" / "br-connection-canceled" (a
connect cancelled by the host, usually because discovery or another connect holds
the controller) and "Software caused connection abort" (ECONNABORTED).
"""

from __future__ import annotations

import asyncio
import errno
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

import bleak_retry_connector as brc
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
)

from battery_hawk.errors import (
    AdapterNotReadyError,
    AuthenticationFailedError,
    BluetoothUnavailableError,
    ConnectTimeoutError,
    DeviceDisconnectedError,
    DeviceNotFoundError,
    InProgressError,
    NotPermittedError,
    OutOfSlotsError,
    TransportError,
)

__all__ = [
    "BLEAK_FAILURES",
    "IN_PROGRESS",
    "TROUBLES",
    "RetryPolicy",
    "Trouble",
    "TroubleClass",
    "classify",
    "dbus_error_name",
    "retry_delay",
    "row",
    "translate",
]

IN_PROGRESS = "org.bluez.Error.InProgress"

# What may escape a bleak call: its own errors, any OSError (no D-Bus socket, no
# permission to it, a dead connection), a timeout, and the KeyError / AttributeError
# bleak raises when BlueZ objects vanish under it.
BLEAK_FAILURES: tuple[type[BaseException], ...] = (
    BleakError,
    EOFError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    KeyError,
    AttributeError,
)


class Trouble(StrEnum):
    """What went wrong, by meaning rather than by wording."""

    IN_PROGRESS = "in_progress"
    NOT_READY = "adapter_not_ready"
    UNAVAILABLE = "bluetooth_unavailable"
    NOT_FOUND = "device_not_found"
    OUT_OF_SLOTS = "out_of_slots"
    NOT_PERMITTED = "not_permitted"
    AUTHENTICATION = "authentication"
    DISCONNECTED = "disconnected"
    TIMEOUT = "timeout"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one connect call treats a class of trouble.

    retries: further attempts within the same call (and its timeout); backoff: seconds
    before the first retry, doubled for each next one; heals: the failure counts
    towards power-cycling a stuck adapter.
    """

    retries: int
    backoff: float
    heals: bool = False


@dataclass(frozen=True, slots=True)
class TroubleClass:
    """One row of the table: how a trouble is recognised and what follows from it."""

    trouble: Trouble
    error: type[TransportError]
    policy: RetryPolicy
    advice: str
    dbus_names: frozenset[str] = frozenset()
    fragments: tuple[str, ...] = ()  # matched case-insensitively in the chain's messages
    matches: Callable[[BaseException], bool] | None = None


def _not_available(*reasons: BleakBluetoothNotAvailableReason) -> Callable[[BaseException], bool]:
    def check(exc: BaseException) -> bool:
        return isinstance(exc, BleakBluetoothNotAvailableError) and exc.reason in reasons

    return check


def _no_bus(exc: BaseException) -> bool:
    # dbus-fast raises these when the system bus socket is missing or refuses us
    return isinstance(exc, FileNotFoundError | ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ECONNREFUSED)
    )


def _is(*types: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, types)


_ABORTED = sorted(
    brc.TRANSIENT_ERRORS - brc.OUT_OF_SLOTS_ERRORS - brc.CONNECTION_CANCELLED_ERRORS
)

TROUBLES: tuple[TroubleClass, ...] = (
    TroubleClass(
        Trouble.IN_PROGRESS, InProgressError,
        RetryPolicy(retries=2, backoff=brc.BLEAK_TRANSIENT_BACKOFF_TIME, heals=True),
        "BlueZ is busy with another operation on this adapter; battery-hawk retries, and "
        "power-cycles the adapter if it stays stuck",
        dbus_names=frozenset({IN_PROGRESS}),
        fragments=("operation already in progress", "software caused connection abort",
                   *_ABORTED),
        matches=_is(brc.BleakAbortedError),
    ),
    TroubleClass(
        Trouble.NOT_READY, AdapterNotReadyError,
        RetryPolicy(retries=1, backoff=brc.BLEAK_TRANSIENT_LONG_BACKOFF_TIME, heals=True),
        "the adapter is off: switch it on with `bluetoothctl power on`; if rfkill blocks "
        "it (`rfkill list`), `rfkill unblock bluetooth` first",
        dbus_names=frozenset({"org.bluez.Error.NotReady", "org.bluez.Error.Blocked"}),
        fragments=("resource not ready", "not powered", "rfkill"),
        matches=_not_available(BleakBluetoothNotAvailableReason.POWERED_OFF),
    ),
    TroubleClass(
        Trouble.UNAVAILABLE, BluetoothUnavailableError,
        RetryPolicy(retries=0, backoff=0.0),
        "is bluetooth.service running? `systemctl status bluetooth`; start it with "
        "`sudo systemctl enable --now bluetooth`",
        dbus_names=frozenset({"org.freedesktop.DBus.Error.ServiceUnknown",
                              "org.freedesktop.DBus.Error.NameHasNoOwner"}),
        matches=lambda exc: _no_bus(exc) or _not_available(
            BleakBluetoothNotAvailableReason.NO_BLUETOOTH,
            BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE,
            BleakBluetoothNotAvailableReason.UNKNOWN,
        )(exc) or ("adapter '" in str(exc) and "not found" in str(exc)),
    ),
    TroubleClass(
        Trouble.NOT_PERMITTED, NotPermittedError,
        RetryPolicy(retries=0, backoff=0.0),
        "BlueZ refused: run battery-hawk as a user in the `bluetooth` group (or root), and "
        "check that the device is not blocked (`bluetoothctl info ADDRESS`)",
        dbus_names=frozenset({"org.bluez.Error.NotPermitted", "org.bluez.Error.NotAuthorized",
                              "org.freedesktop.DBus.Error.AccessDenied"}),
        matches=lambda exc: isinstance(exc, PermissionError) or _not_available(
            BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
            BleakBluetoothNotAvailableReason.DENIED_BY_USER,
            BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN,
        )(exc),
    ),
    TroubleClass(
        Trouble.AUTHENTICATION, AuthenticationFailedError,
        RetryPolicy(retries=0, backoff=0.0),
        "the device wants pairing or encryption; remove a stale pairing with "
        "`bluetoothctl remove ADDRESS` and make sure no phone app holds the monitor",
        dbus_names=frozenset({
            "org.bluez.Error.AuthenticationFailed", "org.bluez.Error.AuthenticationCanceled",
            "org.bluez.Error.AuthenticationRejected", "org.bluez.Error.AuthenticationTimeout",
        }),
        fragments=("insufficient authentication", "insufficient encryption",
                   "authentication failed"),
    ),
    TroubleClass(
        Trouble.OUT_OF_SLOTS, OutOfSlotsError,
        RetryPolicy(retries=1, backoff=brc.BLEAK_OUT_OF_SLOTS_BACKOFF_TIME),
        "the adapter has no free connection slot: lower max_concurrent_connections or "
        "disconnect other devices (`bluetoothctl devices Connected`)",
        fragments=tuple(sorted(brc.OUT_OF_SLOTS_ERRORS)),
        matches=_is(brc.BleakOutOfConnectionSlotsError),
    ),
    TroubleClass(
        Trouble.NOT_FOUND, DeviceNotFoundError,
        RetryPolicy(retries=0, backoff=0.0),
        "the device is not advertising near this adapter: check the address with "
        "`battery-hawk scan`, move the adapter closer, or close the phone app that holds it",
        dbus_names=frozenset(brc.DEVICE_MISSING_ERRORS | {"org.bluez.Error.DoesNotExist"}),
        matches=_is(brc.BleakNotFoundError, BleakDeviceNotFoundError),
    ),
    TroubleClass(
        Trouble.DISCONNECTED, DeviceDisconnectedError,
        RetryPolicy(retries=1, backoff=0.0),
        "the link dropped; battery-hawk reconnects on the next visit",
        dbus_names=frozenset({"org.bluez.Error.NotConnected"}),
        fragments=("not connected",),
        matches=_is(EOFError, BrokenPipeError, ConnectionResetError),
    ),
    TroubleClass(
        Trouble.TIMEOUT, ConnectTimeoutError,
        RetryPolicy(retries=0, backoff=0.0),
        "no answer in time: the device may be out of range or busy with another central",
        matches=_is(TimeoutError, asyncio.TimeoutError),
    ),
)

_OTHER = TroubleClass(Trouble.OTHER, TransportError, RetryPolicy(retries=0, backoff=0.0), "")
_BY_TROUBLE = {row.trouble: row for row in (*TROUBLES, _OTHER)}


def row(trouble: Trouble) -> TroubleClass:
    """The table row of a trouble."""
    return _BY_TROUBLE[trouble]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def dbus_error_name(exc: BaseException) -> str | None:
    """The D-Bus error name behind exc, looking through __cause__ / __context__ chains."""
    for current in _chain(exc):
        if isinstance(current, BleakDBusError):
            return current.dbus_error
        name = getattr(current, "type", None)  # dbus_fast.DBusError.type
        if isinstance(name, str) and name.startswith("org."):
            return name
    return None


def classify(exc: BaseException) -> Trouble:
    """The Trouble behind exc (TransportErrors we raised keep their own class)."""
    for row_ in TROUBLES:
        if type(exc) is row_.error:
            return row_.trouble
    chain = list(_chain(exc))
    names = {dbus_error_name(e) for e in chain} - {None}
    for row_ in TROUBLES:
        if names & row_.dbus_names:
            return row_.trouble
    for row_ in TROUBLES:
        if row_.matches is not None and any(row_.matches(e) for e in chain):
            return row_.trouble
    text = " ".join(str(e) for e in chain).lower()
    for row_ in TROUBLES:
        if any(fragment.lower() in text for fragment in row_.fragments):
            return row_.trouble
    return Trouble.OTHER


def retry_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (1-based): doubling backoff, +-20 % jitter."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return float(policy.backoff * 2 ** (attempt - 1) * rng.uniform(0.8, 1.2))


def translate(
    exc: BaseException, address: str, doing: str, trouble: Trouble | None = None
) -> TransportError:
    """The TransportError subclass for exc; the caller raises it `from exc`."""
    if isinstance(exc, TransportError):
        return exc
    trouble = classify(exc) if trouble is None else trouble
    cls = row(trouble)
    if trouble is Trouble.TIMEOUT:
        return ConnectTimeoutError(f"{address}: {doing} timed out")
    detail = str(exc) or type(exc).__name__
    if trouble is Trouble.DISCONNECTED and isinstance(exc, EOFError | OSError):
        detail = f"D-Bus connection lost ({exc!r})"
    message = f"{address}: {doing} failed: {detail}"
    if cls.advice and trouble is not Trouble.DISCONNECTED:
        message += f" ({cls.advice})"
    return cls.error(message)

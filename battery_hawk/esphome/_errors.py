"""aioesphomeapi's errors translated into battery-hawk's TransportError tree (STYLE 5).

Each row names the aioesphomeapi error classes it covers, the TransportError it becomes and
what the user can do. The classes are aioesphomeapi's own (aioesphomeapi/core.py); the
first row that matches wins, so the narrow classes come before their bases.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aioesphomeapi.core import (
    APIConnectionError,
    BadMACAddressAPIError,
    BadNameAPIError,
    BluetoothConnectionDroppedError,
    BluetoothGATTAPIError,
    EncryptionHelloAPIError,
    EncryptionPlaintextAPIError,
    HandshakeAPIError,
    InvalidAuthAPIError,
    InvalidEncryptionKeyAPIError,
    PingFailedAPIError,
    ReadFailedAPIError,
    RequiresEncryptionAPIError,
    ResolveAPIError,
    SocketAPIError,
    TimeoutAPIError,
)

from battery_hawk.errors import (
    AdapterNotReadyError,
    AuthenticationFailedError,
    ConnectTimeoutError,
    DeviceDisconnectedError,
    TransportError,
)

__all__ = ["API_FAILURES", "failure_kind", "translate"]

# What may escape an aioesphomeapi call: its own errors, socket errors, timeouts, and the
# ValueError it raises for a request the proxy's features cannot serve.
API_FAILURES: tuple[type[BaseException], ...] = (
    APIConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    ValueError,
)


@dataclass(frozen=True, slots=True)
class _Row:
    causes: tuple[type[BaseException], ...]
    error: type[TransportError]
    kind: str  # what went wrong, in a few words (one warning per kind, STYLE 9)
    advice: str  # {key}: the config key of the proxy's encryption key, {password}: its password


_ROWS: tuple[_Row, ...] = (
    _Row((InvalidEncryptionKeyAPIError,), AuthenticationFailedError,
         "it refused the encryption key",
         "set {key} to the proxy's `api: encryption: key:`"),
    _Row((RequiresEncryptionAPIError, EncryptionHelloAPIError), AuthenticationFailedError,
         "it requires encryption", "set {key} to its `api: encryption: key:`"),
    _Row((EncryptionPlaintextAPIError,), AuthenticationFailedError,
         "it has no encryption",
         "remove {key}, or add `api: encryption:` to the proxy's YAML"),
    _Row((InvalidAuthAPIError,), AuthenticationFailedError,
         "it refused the password", "set {password} to its `api: password:`"),
    _Row((BadNameAPIError, BadMACAddressAPIError), AdapterNotReadyError,
         "another device answers at this address", "check host"),
    _Row((HandshakeAPIError,), AuthenticationFailedError,
         "the encrypted handshake failed", "check {key}"),
    _Row((ResolveAPIError,), AdapterNotReadyError,
         "its host name does not resolve", "check host, or give its IP address"),
    _Row((PingFailedAPIError, ReadFailedAPIError), AdapterNotReadyError,
         "it stopped answering", "battery-hawk reconnects to it with backoff"),
    _Row((TimeoutAPIError, TimeoutError, asyncio.TimeoutError), ConnectTimeoutError,
         "no answer in time", ""),
    _Row((BluetoothConnectionDroppedError,), DeviceDisconnectedError,
         "the device dropped the link", "battery-hawk reconnects on the next visit"),
    _Row((BluetoothGATTAPIError,), TransportError, "the device refused the operation", ""),
    _Row((SocketAPIError, OSError, ConnectionError), AdapterNotReadyError,
         "it cannot be reached",
         "is it powered and on the network, and is the `api:` component in its YAML?"),
)


def _row(exc: BaseException) -> _Row | None:
    return next((row for row in _ROWS if isinstance(exc, row.causes)), None)


def failure_kind(exc: BaseException) -> str:
    """What went wrong, in a few words that do not change from one try to the next (a
    proxy that refuses the key: "it refused the encryption key"); a TransportError made
    by translate() is judged by its cause, another by its message."""
    cause = exc.__cause__ if isinstance(exc, TransportError) and exc.__cause__ else exc
    row = _row(cause)
    return row.kind if row is not None else str(exc)


SCAN_OPTIONS = "--esphome"  # config_key of `scan --esphome`: advice names its options


def translate(exc: BaseException, where: str, doing: str, *, config_key: str = ""
              ) -> TransportError:
    """The TransportError for exc (the caller raises it ``from exc``).

    ``where`` names the proxy (and device), ``doing`` the operation that failed;
    ``config_key``: the proxy's entry in the config (``bluetooth.esphome_proxies[0]``),
    so that a refused key names the key to fix.
    """
    if isinstance(exc, TransportError):
        return exc
    detail = str(exc) or type(exc).__name__
    head, sep, rest = detail.partition(": ")
    if sep and rest and head in where:  # aioesphomeapi begins with the host: said already
        detail = rest
    row = _row(exc)
    if row is None:
        return TransportError(f"{where}: {doing} failed: {detail}")
    if row.error is ConnectTimeoutError:
        return ConnectTimeoutError(f"{where}: {doing} timed out")
    if config_key == SCAN_OPTIONS:  # `battery-hawk scan --esphome`: its own options
        key, password = "--esphome-key", "--esphome-password"
    else:
        prefix = f"{config_key}." if config_key else ""
        key, password = f"{prefix}encryption_key", f"{prefix}password"
    advice = row.advice.format(key=key, password=password)
    return row.error(f"{where}: {doing} failed: {row.kind}: {detail}"
                     + (f" ({advice})" if advice else ""))

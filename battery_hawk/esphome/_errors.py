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

__all__ = ["API_FAILURES", "translate"]

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
    advice: str


_ROWS: tuple[_Row, ...] = (
    _Row((InvalidEncryptionKeyAPIError,), AuthenticationFailedError,
         "the proxy refused the encryption key: set encryption_key to the proxy's "
         "`api: encryption: key:`"),
    _Row((RequiresEncryptionAPIError, EncryptionHelloAPIError), AuthenticationFailedError,
         "the proxy requires encryption: set encryption_key to its `api: encryption: key:`"),
    _Row((EncryptionPlaintextAPIError,), AuthenticationFailedError,
         "the proxy has no encryption: remove encryption_key, or add `api: encryption:` to "
         "the proxy's YAML"),
    _Row((InvalidAuthAPIError,), AuthenticationFailedError,
         "the proxy refused the password: set password to its `api: password:`"),
    _Row((BadNameAPIError, BadMACAddressAPIError), AdapterNotReadyError,
         "another device answers at this address: check host"),
    _Row((HandshakeAPIError,), AuthenticationFailedError,
         "the encrypted handshake failed: check encryption_key"),
    _Row((ResolveAPIError,), AdapterNotReadyError,
         "the proxy's host name does not resolve: check host, or give its IP address"),
    _Row((PingFailedAPIError, ReadFailedAPIError), AdapterNotReadyError,
         "the proxy stopped answering; battery-hawk reconnects to it with backoff"),
    _Row((TimeoutAPIError, TimeoutError, asyncio.TimeoutError), ConnectTimeoutError,
         "no answer in time"),
    _Row((BluetoothConnectionDroppedError,), DeviceDisconnectedError,
         "the device dropped the link; battery-hawk reconnects on the next visit"),
    _Row((BluetoothGATTAPIError,), TransportError, "the device refused the operation"),
    _Row((SocketAPIError, OSError, ConnectionError), AdapterNotReadyError,
         "the proxy cannot be reached: is it powered and on the network, and is the "
         "`api:` component in its YAML?"),
)


def translate(exc: BaseException, where: str, doing: str) -> TransportError:
    """The TransportError for exc (the caller raises it ``from exc``).

    ``where`` names the proxy (and device), ``doing`` the operation that failed.
    """
    if isinstance(exc, TransportError):
        return exc
    detail = str(exc) or type(exc).__name__
    for row in _ROWS:
        if isinstance(exc, row.causes):
            if row.error is ConnectTimeoutError:
                return ConnectTimeoutError(f"{where}: {doing} timed out")
            return row.error(f"{where}: {doing} failed: {detail} ({row.advice})")
    return TransportError(f"{where}: {doing} failed: {detail}")

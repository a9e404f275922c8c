"""Encoders: the exact byte frames each family sends, built from a Reading.

The inverse of the decoders in battery_hawk.protocols, for the demo simulator and the
fake BlueZ's controller. Needs the standard library and pycryptodome (the AES library
battery_hawk/protocols/_aes.py uses); the Victron side is written here from the
documented layout and checked against victron-ble in the tests.

Values are quantised to what each protocol can carry (BM6: whole degrees and percent,
centivolts; Victron: its field resolutions); out-of-range values are clamped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from enum import StrEnum
from functools import lru_cache
from typing import Final

from Crypto.Cipher import AES

from battery_hawk.errors import DecodeError
from battery_hawk.models import BatteryState, Reading
from battery_hawk.protocols._aes import BLOCK, ZeroIvCbc
from battery_hawk.protocols.bm2 import (
    BM2_KEY,
    HISTORY_END,
    HISTORY_FRAMING,
    HISTORY_ITEM,
    HISTORY_START,
    VOLTAGE_PACKET,
)
from battery_hawk.protocols.bm6 import (
    BM6_KEY,
    ECHO_MARKER,
    FIRMWARE_REQUEST,
    REPLY,
    REPLY_PREFIX,
    STATE_CODES,
    VOLTAGE_REQUEST,
)
from battery_hawk.protocols.bm7 import BM7_KEY

__all__ = [
    "BM2_KEY",
    "BM6_KEY",
    "BM7_KEY",
    "Bm2Command",
    "LeagendCommand",
    "bas_level",
    "bm2_command",
    "bm2_history_count_reply",
    "bm2_history_frames",
    "bm2_voltage",
    "bm6_echo",
    "bm6_firmware_reply",
    "bm6_reply",
    "leagend_advert",
    "leagend_command",
    "leagend_encrypt",
    "victron_battery_monitor",
    "victron_payload",
    "victron_solar_charger",
]


@lru_cache(maxsize=64)
def _cbc(key: bytes) -> ZeroIvCbc:
    return ZeroIvCbc(key)


def leagend_encrypt(plain: bytes, key: bytes) -> bytes:
    """AES-CBC zero-IV encryption, zero-padded to whole blocks (BM2/BM6/BM7)."""
    return _cbc(bytes(key)).encrypt(plain)


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


# ---------------------------------------------------------------- BM6 / BM7


class LeagendCommand(StrEnum):
    """What a BM6/BM7 was asked for."""

    VOLTAGE = "voltage"  # d1 55 07 + zeros
    FIRMWARE = "firmware"  # d1 55 01 + zeros


_STATE_BYTES: Final = {state: code for code, state in STATE_CODES.items()}


def leagend_command(frame: bytes, key: bytes = BM6_KEY) -> LeagendCommand | None:
    """Decrypt a command written to fff3; which request it is, or None (wrong key, other)."""
    try:
        plain = _cbc(bytes(key)).decrypt(bytes(frame))
    except DecodeError:
        return None
    if plain == VOLTAGE_REQUEST:
        return LeagendCommand.VOLTAGE
    if plain == FIRMWARE_REQUEST:
        return LeagendCommand.FIRMWARE
    return None


def bm6_reply(reading: Reading, key: bytes = BM6_KEY) -> bytes:
    """The encrypted d1 55 07 reply a BM6/BM7 notifies for this reading."""
    temperature = reading.temperature or 0.0
    magnitude = _clamp(abs(temperature), 0, 0xFF)
    sign = 1 if temperature < 0 and magnitude else 0
    state = reading.state
    code = _STATE_BYTES.get(state, 0) if isinstance(state, BatteryState) else 0
    plain = REPLY.pack(
        REPLY_PREFIX,
        sign,
        magnitude,
        code,
        _clamp(reading.soc or 0.0, 0, 100),
        _clamp((reading.voltage or 0.0) * 100, 0, 0xFFFF),
    )
    return leagend_encrypt(plain, key)


def bm6_echo(key: bytes = BM6_KEY) -> bytes:
    """The encrypted ``d1 55 07 ff`` echo some units send before the reply."""
    return leagend_encrypt(REPLY_PREFIX + bytes([ECHO_MARKER]), key)


def bm6_firmware_reply(key: bytes = BM6_KEY, payload: bytes = b"\x01\x08\x00\x05") -> bytes:
    """An encrypted ``d1 55 01`` firmware reply (default payload as captured from a BM6)."""
    return leagend_encrypt(FIRMWARE_REQUEST[:3] + payload, key)


# ---------------------------------------------------------------- BM2


class Bm2Command(StrEnum):
    """What a BM2 was asked for."""

    HISTORY_COUNT = "history_count"  # e7 01
    HISTORY_DOWNLOAD = "history_download"  # e3 00 00 + count


def bm2_command(frame: bytes, key: bytes = BM2_KEY) -> tuple[Bm2Command, int] | None:
    """Decrypt a command written to a BM2: (which, count for a download), or None."""
    try:
        plain = _cbc(bytes(key)).decrypt(bytes(frame))
    except DecodeError:
        return None
    if plain[:2] == b"\xe7\x01":
        return Bm2Command.HISTORY_COUNT, 0
    if plain[:3] == b"\xe3\x00\x00":
        return Bm2Command.HISTORY_DOWNLOAD, int.from_bytes(plain[3:7], "big")
    return None


def bm2_voltage(voltage: float, key: bytes = BM2_KEY, counter: int = 0) -> bytes:
    """An encrypted 0xF5 notification; bytes 3..5 imitate the captures (64, a counter)."""
    centivolts = _clamp(voltage * 100, 0, 0xFFF)
    plain = struct.pack(">BHBH", VOLTAGE_PACKET, centivolts << 4 | 0x1, 0x64, counter & 0xFFFF)
    return leagend_encrypt(plain, key)


def bm2_history_count_reply(count: int, key: bytes = BM2_KEY) -> bytes:
    """The encrypted ``e7`` + 3-byte count reply."""
    return leagend_encrypt(b"\xe7" + count.to_bytes(3, "big"), key)


def bm2_history_frames(
    items: Sequence[tuple[float, float, int]], key: bytes = BM2_KEY
) -> list[bytes]:
    """The encrypted notifications of one history download, oldest item first.

    Each item is (voltage, min_crank_voltage, kind): start marker, 16-byte data frames,
    end marker with the framed length.
    """
    data = b"".join(
        HISTORY_ITEM.pack(
            _clamp(v * 100, 0, 0xFFF) << 4, _clamp(c * 100, 0, 0xFFF) << 4 | (k & 0xF)
        )
        for v, c, k in items
    )
    aes = _cbc(bytes(key))
    frames = [aes.encrypt(HISTORY_START)]
    frames += [aes.encrypt(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]
    frames.append(aes.encrypt(HISTORY_END + (len(data) + HISTORY_FRAMING).to_bytes(3, "big")))
    return frames


# ---------------------------------------------------------------- Victron

VICTRON_HEADER: Final = struct.Struct("<BBHBH")  # 0x10, 0x02, model id, readout type, nonce
BATTERY_MONITOR: Final = 0x02
SOLAR_CHARGER: Final = 0x01
SMARTSHUNT_500A: Final = 0xA389
BLUESOLAR_75_15: Final = 0xA042


def _bits(fields: Sequence[tuple[int, int]]) -> bytes:
    """Pack (value, width) fields LSB-first, the way Victron's extra data is packed."""
    acc = 0
    pos = 0
    for value, width in fields:
        acc |= (value & ((1 << width) - 1)) << pos
        pos += width
    return acc.to_bytes((pos + 7) // 8, "little")


@lru_cache(maxsize=256)
def _ecb(key: bytes) -> Callable[[bytes], bytes]:
    return AES.new(key, AES.MODE_ECB).encrypt


def _ctr(key: bytes, nonce: int, plain: bytes) -> bytes:
    # AES-CTR with a 128-bit little-endian counter starting at the 16-bit nonce.
    encrypt = _ecb(key)
    blocks = b"".join(
        ((nonce + i) % (1 << 128)).to_bytes(16, "little")
        for i in range((len(plain) + BLOCK - 1) // BLOCK)
    )
    stream = encrypt(blocks)
    return bytes(p ^ s for p, s in zip(plain, stream, strict=False))


def victron_payload(
    readout_type: int, model_id: int, plain: bytes, key: bytes, nonce: int
) -> bytes:
    """Manufacturer data 0x02E1 carrying an encrypted instant-readout record."""
    nonce &= 0xFFFF
    header = VICTRON_HEADER.pack(0x10, 0x02, model_id, readout_type, nonce)
    return header + bytes(key[:1]) + _ctr(bytes(key), nonce, plain)


def _or_na(value: float | None, scale: float, na: int, low: int, high: int) -> int:
    return na if value is None else _clamp(value * scale, low, high)


def victron_battery_monitor(
    reading: Reading, key: bytes, nonce: int, model_id: int = SMARTSHUNT_500A
) -> bytes:
    """A SmartShunt/BMV record: voltage, current, SoC, consumed Ah, time left, aux input."""
    if reading.temperature is not None:
        aux_mode, aux = 2, _clamp((reading.temperature + 273.15) * 100, 0, 0xFFFF)
    elif reading.aux_voltage is not None:
        aux_mode, aux = 0, _clamp(reading.aux_voltage * 100, -0x8000, 0x7FFF)
    else:
        aux_mode, aux = 3, 0
    consumed = None if reading.consumed_ah is None else -reading.consumed_ah
    plain = _bits(
        [
            (_or_na(reading.remaining_mins, 1, 0xFFFF, 0, 0xFFFE), 16),
            (_or_na(reading.voltage, 100, 0x7FFF, -0x8000, 0x7FFE), 16),
            (1 if reading.state == BatteryState.LOW_VOLTAGE else 0, 16),  # alarm reason
            (aux, 16),
            (aux_mode, 2),
            (_or_na(reading.current, 1000, 0x3FFFFF, -0x200000, 0x1FFFFF), 22),
            (_or_na(consumed, 10, 0xFFFFF, 0, 0xFFFFE), 20),
            (_or_na(reading.soc, 10, 0x3FF, 0, 1000), 10),
        ]
    )
    return victron_payload(BATTERY_MONITOR, model_id, plain, key, nonce)


_CHARGER_STATES: Final = {
    BatteryState.CHARGING: 3,  # bulk
    BatteryState.IDLE: 0,  # off
    BatteryState.FAULT: 2,
}


def victron_solar_charger(
    reading: Reading, key: bytes, nonce: int, model_id: int = BLUESOLAR_75_15
) -> bytes:
    """A SmartSolar/BlueSolar record: battery voltage and current, PV power, yield today."""
    state = reading.state
    code = _CHARGER_STATES.get(state, 0xFF) if isinstance(state, BatteryState) else 0xFF
    plain = _bits(
        [
            (code, 8),
            (0, 8),  # charger error: none
            (_or_na(reading.voltage, 100, 0x7FFF, -0x8000, 0x7FFE), 16),
            (_or_na(reading.current, 10, 0x7FFF, -0x8000, 0x7FFE), 16),
            (_or_na(reading.yield_today, 100, 0xFFFF, 0, 0xFFFE), 16),  # 10 Wh units
            (_or_na(reading.solar_power, 1, 0xFFFF, 0, 0xFFFE), 16),
            (0x1FF, 9),  # external load: not available
        ]
    )
    return victron_payload(SOLAR_CHARGER, model_id, plain, key, nonce)


# ---------------------------------------------------------------- Leagend adverts


def leagend_advert(
    reading: Reading, address: str, key: bytes = BM6_KEY, *, mac_reversed: bool = False
) -> dict[int, bytes]:
    """The manufacturer data of a BM2/BM6 advert carrying voltage and SoC (leagend_advert).

    One AES block (MAC, centivolts, SoC, seven unknown bytes sent as zero), split the
    way a BLE stack splits it: its first two bytes become the "company id".
    """
    mac = bytes.fromhex(address.replace(":", ""))
    plain = (mac[::-1] if mac_reversed else mac) + struct.pack(
        ">HB", _clamp((reading.voltage or 0.0) * 100, 0, 0xFFFF),
        _clamp(reading.soc or 0.0, 0, 100),
    )
    block = leagend_encrypt(plain, key)
    return {int.from_bytes(block[:2], "little"): block[2:]}


# ---------------------------------------------------------------- Battery Service


def bas_level(soc: float | None) -> bytes:
    """The one-byte Battery Level characteristic value."""
    return bytes([_clamp(soc or 0.0, 0, 100)])

"""Leagend BM6 (and its many rebrands: Intact Battery Guard, ANCEL BM200, ...).

The gateway writes an AES-encrypted request to fff3; the monitor notifies the encrypted
reply on fff4. Facts, with their public sources:

- key ``leagend\\xff\\xfe0100009``, AES-128-CBC zero IV, service fff0, write fff3, notify
  fff4: tarball.ca "Reverse engineering the BM6 BLE battery monitor"; the ESPHome BM6
  component (its comment gives the encrypted request ``697ea0b5d54cf024e794772355554114``,
  which this module reproduces); marcomc/BMGateway docs.
- request ``d1 55 07`` + 13 zero bytes asks for the live reading; ``d1 55 01`` for the
  firmware version (marcomc/BMGateway ``docs``: "Verified Live Command", "Raw Version
  Command").
- reply layout (decrypted), table below; state codes 0 normal, 1 low, 2 charging
  (marcomc/BMGateway). The echo ``d1 55 07 ff ...`` carries no reading.
- advertisements: an iBeacon with the family's UUID and an encrypted block with voltage
  and SoC (see leagend_advert); names the units are sold under: "BM6", "Battery Guard"
  (intAct, OpenMQTTGateway issue 1792), "BM200" (ANCEL).
"""

from __future__ import annotations

import struct
from typing import ClassVar, Final

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, BatteryState, Reading
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.base import Driver, Mode, uuid16
from battery_hawk.protocols.leagend_advert import (
    ADVERT_FIELDS,
    BM6_IBEACON_UUID,
    decode_advert,
    ibeacon_uuid,
)

__all__ = [
    "BM6",
    "BM6_KEY",
    "FIRMWARE_REQUEST",
    "STATE_CODES",
    "VOLTAGE_REQUEST",
    "LeagendPollDriver",
]

BM6_KEY: Final = b"leagend\xff\xfe0100009"

VOLTAGE_REQUEST: Final = bytes.fromhex("d15507") + bytes(13)
FIRMWARE_REQUEST: Final = bytes.fromhex("d15501") + bytes(13)

REPLY_PREFIX: Final = b"\xd1\x55\x07"
FIRMWARE_PREFIX: Final = b"\xd1\x55\x01"
ECHO_MARKER: Final = 0xFF  # byte 3 of a "d1 55 07 ff" echo of our own request

# Decrypted reply, 16 bytes:
#   0..2  d1 55 07            prefix
#   3     temperature sign    0 = positive, 1 = negative (0xff: echo, no reading)
#   4     temperature         whole degrees Celsius (magnitude)
#   5     state               STATE_CODES
#   6     state of charge     percent, 0..100
#   7..8  voltage             big-endian, centivolts
#   9..15 rapid accel/decel counters and padding (not used)
REPLY: Final = struct.Struct(">3sBBBBH7x")

STATE_CODES: Final[dict[int, BatteryState]] = {
    0: BatteryState.NORMAL,
    1: BatteryState.LOW_VOLTAGE,
    2: BatteryState.CHARGING,
}


class LeagendPollDriver(Driver):
    """The request/response Leagend monitors (BM6, BM7): same frames, different keys."""

    mode: ClassVar[Mode] = Mode.POLL
    manufacturer: ClassVar[str] = "Leagend"
    service_uuid: ClassVar[str | None] = uuid16(0xFFF0)
    write_uuid: ClassVar[str | None] = uuid16(0xFFF3)
    notify_uuid: ClassVar[str | None] = uuid16(0xFFF4)
    names: ClassVar[tuple[str, ...]] = ()  # advertised names, upper case
    beacon_uuid: ClassVar[str | None] = None  # the family's iBeacon UUID, if known
    advert_mac_reversed: ClassVar[bool] = False

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__(key)
        assert self.key is not None
        self._aes = ZeroIvCbc(self.key)
        self._poll = self._aes.encrypt(VOLTAGE_REQUEST)
        self._firmware = self._aes.encrypt(FIRMWARE_REQUEST)

    @classmethod
    def match(cls, adv: Advertisement) -> str | None:
        name = (adv.name or "").strip().upper()
        # Rebrands keep the family suffix ("Intact BM6"); the first name is that suffix.
        if name and (name in cls.names or name.endswith(cls.names[0])):
            return f"name {adv.name!r}"
        if cls.beacon_uuid is not None and ibeacon_uuid(adv) == cls.beacon_uuid:
            return f"iBeacon uuid {cls.beacon_uuid} ({cls.model})"
        return None

    def decode_advert(self, adv: Advertisement) -> Reading:
        if not self.advert_fields:
            raise NotAReading(f"{self.family} advertisements are not decoded")
        return decode_advert(
            self._aes, adv, mac_reversed=self.advert_mac_reversed, family=self.family
        )

    def poll_command(self) -> bytes:
        """The encrypted ``d1 55 07`` live-reading request."""
        return self._poll

    def firmware_command(self) -> bytes:
        """The encrypted ``d1 55 01`` firmware-version request."""
        return self._firmware

    def decrypt(self, frame: bytes) -> bytes:
        """The plaintext of one notification (DecodeError if it is not whole blocks)."""
        return self._aes.decrypt(frame)

    def decode(self, frame: bytes) -> Reading:
        if len(frame) != 16:
            raise DecodeError(f"{self.family} reply must be 16 bytes, got {len(frame)}")
        plain = self._aes.decrypt(frame)
        prefix, sign, temp, state, soc, centivolts = REPLY.unpack(plain)
        if prefix != REPLY_PREFIX:
            if plain[:3] == FIRMWARE_PREFIX:
                raise NotAReading(f"{self.family} firmware version reply")
            raise DecodeError(
                f"{self.family} reply has prefix {plain[:3].hex()}, not d15507 (wrong key?)"
            )
        if sign == ECHO_MARKER:
            raise NotAReading(f"{self.family} echo of the request")
        if sign > 1:
            raise DecodeError(f"{self.family} temperature sign byte {sign:#04x} is not 0 or 1")
        if soc > 100:
            raise DecodeError(f"{self.family} state of charge {soc} is over 100")
        return Reading(
            voltage=centivolts / 100,
            soc=float(soc),
            temperature=float(-temp if sign else temp),
            # An unknown state code is reported as "not available" rather than
            # discarding a reading whose other fields are sound.
            state=STATE_CODES.get(state),
        )

    def firmware_version(self, frame: bytes) -> str:
        """The raw firmware payload of a ``d1 55 01`` reply, as hex (its meaning is unknown)."""
        plain = self._aes.decrypt(frame)
        if plain[:3] != FIRMWARE_PREFIX:
            raise DecodeError(f"{self.family} frame is not a firmware version reply")
        return plain[3:].rstrip(b"\x00").hex()


class BM6(LeagendPollDriver):
    """Leagend BM6 and rebrands (Intact Battery Guard, ANCEL BM200)."""

    family: ClassVar[str] = "bm6"
    model: ClassVar[str] = "BM6"
    default_key: ClassVar[bytes | None] = BM6_KEY
    names: ClassVar[tuple[str, ...]] = ("BM6", "BM200", "BATTERY GUARD")
    beacon_uuid: ClassVar[str | None] = BM6_IBEACON_UUID
    advert_fields: ClassVar[tuple[str, ...]] = ADVERT_FIELDS

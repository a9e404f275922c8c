"""What Leagend monitors (BM2, BM6 and their rebrands) put in their advertisements.

They alternate two advertisements. Facts, with their public sources:

- an iBeacon (Apple company id 0x004C, ``02 15`` + 16-byte UUID + major + minor + power)
  whose UUID is the same for every unit of a family, whatever name it is sold under:
  BM2 ``655f83ca-ae16-a10a-702e-31f30d58dd82`` (theengs/decoder issues 420 and 559, units
  named "Battery Monitor", "BM2", "ZX-1689", "Li Battery Monitor"); BM6
  ``3ba29cd9-a42c-8948-56ba-daf2606ef777`` (theengs/decoder issue 420, OpenMQTTGateway
  issue 1792 for a unit sold as "Battery Guard", fl4p/batmon-ha issue 160).
- a 16-byte manufacturer-data record that is one AES block under the family's key (zero
  IV, as its GATT frames). BLE stacks read its first two bytes as a company id, which is
  therefore meaningless and different on every unit: the block is that id (little
  endian) followed by the data. Decrypted:

  ====== ==================================================================
  bytes  content
  ====== ==================================================================
  0..5   the advertiser's MAC address (BM6: in order; BM2: byte-reversed)
  6..7   voltage, big-endian, centivolts
  8      state of charge, percent
  9..15  not decoded (their meaning is not confirmed by any public source)
  ====== ==================================================================

  BM2: OpenMQTTGateway pull request 2373 (MAC reversed, voltage and SoC checked against
  readings over a connection on several units); the capture in theengs/decoder issue
  420 decrypts to its advertiser's reversed MAC, 12.83 V and the 93 % its iBeacon gave.
  BM6: the same layout with the MAC in
  order, in all five public captures (OpenMQTTGateway issue 1792, fl4p/batmon-ha issue
  160 twice, theengs/decoder issue 420, Rafciq/BM6 issue 16): the MAC matches the
  advertiser's every time, the voltages are 12.53 to 13.28 V, and byte 8 equals the SoC
  the same unit's iBeacon gave in the same report (85, 77, 17, 100 %). No public BM7
  advertisement is known, so BM7 adverts are not decoded.

The MAC at the head of the plaintext is the integrity check: under a wrong key, or for
another unit's block, it does not match the advertiser's address.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, Reading
from battery_hawk.protocols._aes import BLOCK, ZeroIvCbc

__all__ = [
    "ADVERT_FIELDS",
    "APPLE_COMPANY_ID",
    "BM2_IBEACON_UUID",
    "BM6_IBEACON_UUID",
    "advert_blocks",
    "decode_advert",
    "decode_advert_block",
    "ibeacon_uuid",
]

APPLE_COMPANY_ID: Final = 0x004C
IBEACON_PREFIX: Final = b"\x02\x15"
BM2_IBEACON_UUID: Final = "655f83ca-ae16-a10a-702e-31f30d58dd82"
BM6_IBEACON_UUID: Final = "3ba29cd9-a42c-8948-56ba-daf2606ef777"

# Decrypted advert block: MAC (6), voltage (centivolts, big-endian), SoC, the rest unknown.
_BLOCK: Final = struct.Struct(">6sHB7x")
ADVERT_FIELDS: Final = ("voltage", "soc")


def ibeacon_uuid(adv: Advertisement) -> str | None:
    """The iBeacon proximity UUID an advertisement carries (lower case, dashed), or None."""
    data = adv.manufacturer_data.get(APPLE_COMPANY_ID)
    if data is None or len(data) < 18 or data[:2] != IBEACON_PREFIX:
        return None
    raw = bytes(data[2:18]).hex()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def advert_blocks(adv: Advertisement) -> Iterator[bytes]:
    """Each 16-byte manufacturer-data record rebuilt whole (company id bytes + data)."""
    # The length alone tells a block from the iBeacon (23 bytes): a block whose first two
    # ciphertext bytes happen to be 4c 00 is filed under Apple's id and is still a block.
    for company, data in adv.manufacturer_data.items():
        if len(data) == BLOCK - 2 and 0 <= company <= 0xFFFF:
            yield company.to_bytes(2, "little") + bytes(data)


def _mac(address: str) -> bytes:
    try:
        mac = bytes.fromhex(address.replace(":", "").replace("-", ""))
    except ValueError:
        raise DecodeError(f"advertiser address {address!r} is not a MAC address") from None
    if len(mac) != 6:
        raise DecodeError(f"advertiser address {address!r} is not a MAC address")
    return mac


def decode_advert_block(
    aes: ZeroIvCbc, block: bytes, address: str, *, mac_reversed: bool, family: str
) -> Reading:
    """Voltage and SoC from one encrypted advert block of the unit at ``address``.

    Raises DecodeError when the block does not carry that unit's MAC (wrong key, or not
    a block of this family) or its SoC is over 100.
    """
    if len(block) != BLOCK:
        raise DecodeError(f"{family} advert block must be 16 bytes, got {len(block)}")
    mac, centivolts, soc = _BLOCK.unpack(aes.decrypt(block))
    expected = _mac(address)
    if mac != (expected[::-1] if mac_reversed else expected):
        raise DecodeError(
            f"{family} advert block does not carry the advertiser's MAC (wrong key?)"
        )
    if soc > 100:
        raise DecodeError(f"{family} advert state of charge {soc} is over 100")
    return Reading(voltage=centivolts / 100, soc=float(soc))


def decode_advert(
    aes: ZeroIvCbc, adv: Advertisement, *, mac_reversed: bool, family: str
) -> Reading:
    """The reading in the last block of ``adv`` that decodes; NotAReading if it has none.

    BlueZ keeps every manufacturer-data entry a device ever sent (the block's "company
    id" changes with its ciphertext), in the order it first saw them, so the last block
    that decodes is the newest. An advertisement without a 16-byte block (the iBeacon
    half of the alternation) is NotAReading; one whose blocks all fail is DecodeError
    with the last reason.
    """
    error: DecodeError | None = None
    found: Reading | None = None
    for block in advert_blocks(adv):
        try:
            found = decode_advert_block(
                aes, block, adv.address, mac_reversed=mac_reversed, family=family
            )
        except DecodeError as exc:
            error = exc
    if found is not None:
        return found
    if error is not None:
        raise error
    raise NotAReading(f"{family} advertisement carries no reading block")

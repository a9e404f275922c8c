"""Device-family builders of FakeBlueZ: BM6 / BM7, BM2, Victron and Battery Service.

DeviceFamilies is a mixin of FakeBlueZ (controller.py) on top of PeripheralControl: it
turns family knowledge (UUIDs, keys, request prefixes, and frames from
battery_hawk.simulator.frames) into the generic devices, characteristics, responders,
streams and adverts of peripherals.py. FakeBlueZ initialises the per-address `_keys`
and `_echo` maps it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tests.fakebluez.peripherals import PeripheralControl, uuid16

if TYPE_CHECKING:
    from battery_hawk.models import Reading

__all__ = ["DeviceFamilies"]


class DeviceFamilies(PeripheralControl):
    """add_bm6 / add_bm7 / add_bm2 / add_victron / add_battery_service and their setters."""

    _keys: dict[str, bytes]
    _echo: dict[str, bool]

    # --- device families (frames from battery_hawk.simulator.frames) -------------------

    def add_leagend_poll(
        self,
        address: str,
        reading: Reading,
        *,
        family: str = "bm6",
        name: str | None = None,
        key: bytes | None = None,
        echo: bool = False,
        rssi: int = -60,
    ) -> None:
        """A BM6 / BM7: decrypts the d1 55 07 request written to fff3, notifies on fff4."""
        from battery_hawk.simulator import frames

        key = key or (frames.BM7_KEY if family == "bm7" else frames.BM6_KEY)
        self._keys[address.upper()] = key
        self.add_device(address, name or family.upper(), rssi=rssi,
                        service_uuids=[uuid16(0xFFF0)])
        service = self.add_service(address, uuid16(0xFFF0))
        self.add_characteristic(service, uuid16(0xFFF3), ["write", "write-without-response"])
        self.add_characteristic(service, uuid16(0xFFF4), ["notify"])
        self._echo[address.upper()] = echo
        self.set_leagend_reading(address, reading)

    def add_bm6(self, address: str, reading: Reading, **kwargs: Any) -> None:
        self.add_leagend_poll(address, reading, family="bm6", **kwargs)

    def add_bm7(self, address: str, reading: Reading, **kwargs: Any) -> None:
        self.add_leagend_poll(address, reading, family="bm7", **kwargs)

    def set_leagend_reading(
        self, address: str, reading: Reading, *, echo: bool | None = None
    ) -> None:
        """What a BM6 / BM7 answers from now on (echo: send d1 55 07 ff first)."""
        from battery_hawk.simulator import frames

        address = address.upper()
        key = self._keys[address]
        if echo is not None:
            self._echo[address] = echo
        replies = [frames.bm6_echo(key)] if self._echo[address] else []
        replies.append(frames.bm6_reply(reading, key))
        self.clear_responders(address)
        self.add_responder(address, uuid16(0xFFF3), uuid16(0xFFF4), replies,
                           prefix=b"\xd1\x55\x07", key=key)
        self.add_responder(address, uuid16(0xFFF3), uuid16(0xFFF4),
                           [frames.bm6_firmware_reply(key)], prefix=b"\xd1\x55\x01", key=key)

    def add_bm2(
        self,
        address: str,
        voltages: Sequence[float],
        *,
        interval: float = 0.05,
        name: str = "BM2",
        key: bytes | None = None,
        rssi: int = -60,
    ) -> None:
        """A BM2: once notifications are on, streams 0xF5 frames of voltages round-robin."""
        from battery_hawk.simulator import frames

        key = key or frames.BM2_KEY
        self._keys[address.upper()] = key
        self.add_device(address, name, rssi=rssi, service_uuids=[uuid16(0xFFF0)])
        service = self.add_service(address, uuid16(0xFFF0))
        self.add_characteristic(service, uuid16(0xFFF3), ["write", "write-without-response"])
        self.add_characteristic(service, uuid16(0xFFF4), ["notify"])
        self.set_bm2_voltages(address, voltages, interval=interval)

    def set_bm2_voltages(
        self, address: str, voltages: Sequence[float], *, interval: float = 0.05
    ) -> None:
        from battery_hawk.simulator import frames

        key = self._keys[address.upper()]
        stream = [frames.bm2_voltage(v, key, counter=i) for i, v in enumerate(voltages)]
        self.set_stream(address, uuid16(0xFFF4), stream, interval)

    def add_victron(
        self,
        address: str,
        key: bytes,
        reading: Reading,
        *,
        name: str = "SmartShunt HQ2207",
        nonce: int = 1,
        solar: bool = False,
        rssi: int = -60,
    ) -> None:
        """A Victron advertising an instant-readout record (manufacturer 0x02E1)."""
        self.add_device(address, name, rssi=rssi,
                        manufacturer_data=self._victron_data(key, reading, nonce, solar))

    def set_victron_reading(
        self, address: str, key: bytes, reading: Reading, *, nonce: int = 2,
        solar: bool = False, rssi: int = -60,
    ) -> None:
        self.set_advertisement(address, rssi=rssi,
                               manufacturer_data=self._victron_data(key, reading, nonce, solar))

    @staticmethod
    def _victron_data(key: bytes, reading: Reading, nonce: int, solar: bool) -> dict[int, bytes]:
        from battery_hawk.simulator import frames

        encode = frames.victron_solar_charger if solar else frames.victron_battery_monitor
        return {0x02E1: encode(reading, key, nonce)}

    def add_battery_service(
        self, address: str, soc: float, *, name: str = "Generic Battery", rssi: int = -60
    ) -> None:
        """A device with the standard Battery Service (0x180F / Battery Level 0x2A19)."""
        from battery_hawk.simulator import frames

        self.add_device(address, name, rssi=rssi, service_uuids=[uuid16(0x180F)])
        service = self.add_service(address, uuid16(0x180F))
        self.add_characteristic(service, uuid16(0x2A19), ["read", "notify"],
                                frames.bas_level(soc))

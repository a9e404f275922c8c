"""The generic peripheral controls of FakeBlueZ: one method per control-interface call.

PeripheralControl is a mixin of FakeBlueZ (controller.py), which supplies `call` (one
synchronous call of the template's com.batteryhawk.FakeBlueZ interface) and the
`adapters` list. Each method here maps onto one control method of bluez_template.py:
adapters, advertising devices, GATT services and characteristics, scripted responders
and notification streams, link drops, connect failures, and state for assertions.
Nothing here knows a device family; see families.py for those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

__all__ = ["PeripheralControl", "uuid16"]


def uuid16(short: int) -> str:
    """A 16-bit SIG UUID in the Bluetooth base UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


class PeripheralControl:
    """Adapters, devices and GATT behaviour of the fake, driven over the control bus."""

    adapters: list[str]

    if TYPE_CHECKING:

        def call(self, member: str, signature: str = "", *body: Any) -> Any: ...

    # --- generic peripheral control ---------------------------------------------------

    def add_adapter(self, name: str = "hci0", address: str = "00:1A:7D:DA:71:01") -> str:
        path = str(self.call("AddAdapter", "ss", name, address))
        self.adapters.append(name)
        return path

    def remove_adapter(self, name: str) -> None:
        """The adapter goes away (a USB dongle unplugged): InterfacesRemoved for its
        devices and itself. add_adapter(name, address) brings it back, hearing again
        what it heard before."""
        self.call("RemoveAdapter", "s", name)
        self.adapters.remove(name)

    def hear_on(self, address: str, adapter: str, rssi: int) -> str:
        """Another adapter hears an existing peripheral too, at rssi: its own device
        object and GATT tree there, the same peripheral (one link at a time)."""
        return str(self.call("AddDevice", "sssna{qay}a{say}as", adapter, address, "", rssi,
                             {}, {}, []))

    def set_rssi(self, address: str, rssi: int, *, adapter: str = "hci0") -> None:
        """The RSSI at which adapter hears the peripheral from now on."""
        self.call("SetRSSI", "ssn", address, adapter, rssi)

    def add_device(
        self,
        address: str,
        name: str | None,
        *,
        rssi: int = -60,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        service_uuids: Iterable[str] = (),
        adapter: str = "hci0",
    ) -> str:
        """A peripheral that advertises while the adapter discovers."""
        return str(
            self.call(
                "AddDevice",
                "sssna{qay}a{say}as",
                adapter,
                address,
                name or "",
                rssi,
                dict(manufacturer_data or {}),
                dict(service_data or {}),
                list(service_uuids),
            )
        )

    def set_advertisement(
        self,
        address: str,
        *,
        rssi: int = -60,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
    ) -> None:
        """New advert data on every adapter that hears it; rssi on the first of them."""
        self.call(
            "SetAdvertisement", "sna{qay}a{say}", address, rssi,
            dict(manufacturer_data or {}), dict(service_data or {}),
        )

    def set_advertising(self, address: str, advertising: bool) -> None:
        self.call("SetAdvertising", "sb", address, advertising)

    def add_service(self, address: str, uuid: str) -> str:
        return str(self.call("AddService", "ss", address, uuid))

    def add_characteristic(
        self, service_path: str, uuid: str, flags: Sequence[str], value: bytes = b""
    ) -> str:
        return str(self.call("AddCharacteristic", "ssasay", service_path, uuid, list(flags),
                             value))

    def add_responder(
        self,
        address: str,
        write_uuid: str,
        notify_uuid: str,
        replies: Sequence[bytes],
        *,
        prefix: bytes = b"",
        key: bytes | None = None,
    ) -> None:
        """On a write whose plaintext (AES-decrypted with key) starts with prefix, notify."""
        self.call("AddResponder", "sssayayaay", address, write_uuid, notify_uuid,
                  key or b"", prefix, list(replies))

    def clear_responders(self, address: str) -> None:
        self.call("ClearResponders", "s", address)

    def set_stream(
        self, address: str, notify_uuid: str, frames: Sequence[bytes], interval: float = 0.05
    ) -> None:
        """While notifications are on, send frames round-robin every interval seconds."""
        self.call("SetStream", "ssaayu", address, notify_uuid, list(frames),
                  max(1, round(interval * 1000)))

    def notify(self, address: str, char_uuid: str, frame: bytes) -> bool:
        """Send one notification now; False if nobody is subscribed."""
        return bool(self.call("Notify", "ssay", address, char_uuid, frame))

    def set_char_value(self, address: str, char_uuid: str, value: bytes) -> None:
        self.call("SetCharValue", "ssay", address, char_uuid, value)

    def drop_link(self, address: str) -> None:
        """The peripheral drops the connection now (Connected becomes False)."""
        self.call("DropLink", "s", address)

    def drop_link_on_next_write(self, address: str) -> None:
        """The next write is accepted and then the link drops instead of a reply."""
        self.call("DropOnNextWrite", "s", address)

    def fail_next_connect(
        self, address: str, error_name: str = "org.bluez.Error.InProgress", *,
        count: int = 1, message: str = "Operation already in progress",
    ) -> None:
        """The next `count` Connect calls fail with this D-Bus error."""
        self.call("FailNextConnect", "sssu", address, error_name, message, count)

    def writes(self, address: str) -> list[bytes]:
        """Every value written to any characteristic of the device, raw, in order."""
        return [bytes(w) for w in self.call("GetWrites", "s", address)]

    def device_state(self, address: str) -> dict[str, Any]:
        """connected, connects (successful Connect calls), pending_failures, notifying,
        adapter (the one holding the link, or ""), connects_by_adapter ({"hci0": n}) and
        heard_on (the adapters that hear it)."""
        state = self.call("GetDeviceState", "s", address)
        return {k: (dict(v.value) if isinstance(v.value, dict) else
                    list(v.value) if isinstance(v.value, list) else v.value)
                for k, v in state.items()}

    def adapter_state(self, adapter: str = "hci0") -> dict[str, Any]:
        """discovering, discovery_starts (StartDiscovery calls so far), powered,
        power_log (["off", "on", ...]: every Set of Powered by a client) and stuck."""
        state = self.call("GetAdapterState", "s", adapter)
        return {k: (list(v.value) if k == "power_log" else v.value) for k, v in state.items()}

    def set_adapter_stuck(self, mode: str = "in-progress", adapter: str = "hci0") -> None:
        """Wedge the adapter: "in-progress" (Connect / StartDiscovery answer InProgress) or
        "silent" (discovery reports nothing); "" heals it. A power cycle heals it too."""
        self.call("SetAdapterStuck", "ss", adapter, mode)

    def set_adapter_power(
        self, powered: bool, *, rfkill: bool = False, adapter: str = "hci0"
    ) -> None:
        """Switch the adapter on or off behind the daemon's back; rfkill: soft-blocked
        (PowerState off-blocked, and Powered cannot be set true)."""
        state = "on" if powered else ("off-blocked" if rfkill else "off")
        self.call("SetAdapterPower", "sbs", adapter, powered, state)

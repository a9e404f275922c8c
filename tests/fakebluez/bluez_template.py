"""A python-dbusmock template serving a fake org.bluez for the BLE tests.

Runs under the system /usr/bin/python3 (Debian python3-dbusmock, python3-dbus,
python3-gi, python3-cryptography), never inside the venv:

    /usr/bin/python3 -m dbusmock --system --template bluez_template.py

It is a scriptable BLE peripheral simulator, not a BM6: the controller
(tests/fakebluez/controller.py) turns family knowledge into responders, streams and
adverts. What this file knows is how BlueZ looks to bleak:

- ManufacturerData is a{qv} holding ay, ServiceData a{sv} holding ay (the shipped bluez5
  template gets both wrong and bleak calls .items() on them);
- the adapter has Roles (bleak's default-adapter lookup reads it);
- Connect sets Connected and then ServicesResolved, GATT objects exist up front;
- while the adapter discovers, every advertising device is re-announced every 200 ms
  (bleak only reports devices that change after discovery starts);
- GATT paths are .../dev_XX/serviceHHHH/charHHHH/descHHHH with four hex digits;
- notifications are StartNotify + PropertiesChanged(Value).

This file is the D-Bus surface: the bus constants dbusmock reads, the adapter and its
discovery, the control interface (com.batteryhawk.FakeBlueZ on /) that creates adapters,
devices and GATT objects and scripts their behaviour, and load(). dbusmock picks up
every @dbus.service.method defined here, so they all stay in this file. What a
peripheral does once it exists (connect, read, write, notify, responders, streams) is
in bluez_peripheral.py, loaded below by path because dbusmock execs this file without
putting its directory on sys.path.

The adapter cannot be added in load() (the root object is not registered yet): the
controller calls AddAdapter over D-Bus after start-up.
"""

import importlib.util
import sys
from pathlib import Path

import dbus
import dbus.service
from dbusmock import mockobject
from gi.repository import GLib


def _load_sibling(name):
    """Import tests/fakebluez/<name>.py by path, once per process."""
    key = "fakebluez_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name(name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


peripheral = _load_sibling("bluez_peripheral")

BUS_NAME = "org.bluez"
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

CONTROL_IFACE = "com.batteryhawk.FakeBlueZ"
ADAPTER_IFACE = "org.bluez.Adapter1"
SERVICE_IFACE = "org.bluez.GattService1"
DESC_IFACE = "org.bluez.GattDescriptor1"
AGENT_MANAGER_IFACE = "org.bluez.AgentManager1"

READVERTISE_MS = 200
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"


# --- org.bluez.Adapter1 --------------------------------------------------------------


def _readvertise():
    for adapter_path, obj in list(mockobject.objects.items()):
        if ADAPTER_IFACE not in obj.props or not obj.props[ADAPTER_IFACE]["Discovering"]:
            continue
        if peripheral.adapter_stuck(obj) == "silent":
            continue  # a wedged controller: discovery "runs" and reports nothing
        for dev in peripheral.DEVICES.values():
            if not dev.path.startswith(adapter_path + "/") or not dev.advertising:
                continue
            if dev.connected:
                continue  # a connected peripheral stops advertising
            props = dev.obj.props[peripheral.DEVICE_IFACE]
            peripheral.emit_changed(
                dev.obj,
                peripheral.DEVICE_IFACE,
                {
                    "RSSI": props["RSSI"],
                    "ManufacturerData": props["ManufacturerData"],
                    "ServiceData": props["ServiceData"],
                },
            )
    return True


def _start_discovery(adapter):
    peripheral.check_adapter(adapter)
    adapter.discovery_clients = getattr(adapter, "discovery_clients", 0) + 1
    peripheral.emit_changed(adapter, ADAPTER_IFACE, {"Discovering": dbus.Boolean(True)})
    GLib.idle_add(lambda: _readvertise() and False)


def _stop_discovery(adapter):
    if not adapter.props[ADAPTER_IFACE]["Discovering"]:
        raise peripheral.error("org.bluez.Error.Failed", "No discovery started")
    peripheral.emit_changed(adapter, ADAPTER_IFACE, {"Discovering": dbus.Boolean(False)})


def _remove_device(adapter, path):
    raise peripheral.error("org.bluez.Error.NotSupported", "the fake keeps its devices")


def _set_powered(adapter, powered):
    """What BlueZ does on Set(Adapter1.Powered): rfkill refuses; off ends discovery and links."""
    blocked = getattr(adapter, "rfkill_blocked", False)
    if powered and blocked:
        raise peripheral.error("org.bluez.Error.Failed", "Blocked through rfkill")
    adapter.power_log = [*getattr(adapter, "power_log", []), "on" if powered else "off"]
    if not powered:
        for dev in peripheral.DEVICES.values():
            if dev.path.startswith(adapter.path + "/"):
                dev.drop()
        peripheral.emit_changed(adapter, ADAPTER_IFACE, {
            "Powered": dbus.Boolean(False),
            "PowerState": dbus.String("off-blocked" if blocked else "off"),
            "Discovering": dbus.Boolean(False),
        })
    else:
        adapter.fake_stuck = ""  # a power cycle is what unsticks a wedged controller
        peripheral.emit_changed(adapter, ADAPTER_IFACE, {
            "Powered": dbus.Boolean(True), "PowerState": dbus.String("on"),
        })


_MOCK_SET = mockobject.DBusMockObject.Set


@dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ssv", out_signature="")
def _properties_set(self, interface_name, property_name, value, *args, **kwargs):
    if interface_name == ADAPTER_IFACE and property_name == "Powered":
        self.log(f"Set {self.path} Powered {bool(value)}")
        _set_powered(self, bool(value))
        return
    _MOCK_SET(self, interface_name, property_name, value, *args, **kwargs)


# --- control interface on / ----------------------------------------------------------


@dbus.service.method(CONTROL_IFACE, in_signature="ss", out_signature="o")
def AddAdapter(self, name, address):
    path = "/org/bluez/" + name
    props = {
        "Address": dbus.String(address),
        "AddressType": dbus.String("public"),
        "Name": dbus.String("fake-" + name),
        "Alias": dbus.String("fake-" + name),
        "Class": dbus.UInt32(0),
        "Powered": dbus.Boolean(True),
        "PowerState": dbus.String("on"),
        "Discoverable": dbus.Boolean(False),
        "DiscoverableTimeout": dbus.UInt32(180),
        "Pairable": dbus.Boolean(False),
        "PairableTimeout": dbus.UInt32(0),
        "Discovering": dbus.Boolean(False),
        "UUIDs": dbus.Array([], signature="s"),
        "Modalias": dbus.String("usb:v1D6Bp0246d0540"),
        "Roles": dbus.Array(["central", "peripheral"], signature="s"),
        "ExperimentalFeatures": dbus.Array([], signature="s"),
    }
    self.AddObject(
        path,
        ADAPTER_IFACE,
        props,
        [
            ("StartDiscovery", "", "", _start_discovery),
            ("StopDiscovery", "", "", _stop_discovery),
            ("SetDiscoveryFilter", "a{sv}", "", ""),
            ("GetDiscoveryFilters", "", "as", 'ret = ["UUIDs", "RSSI", "Transport"]'),
            ("RemoveDevice", "o", "", _remove_device),
        ],
    )
    peripheral.emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sssna{qay}a{say}as", out_signature="o")
def AddDevice(self, adapter, address, name, rssi, manufacturer_data, service_data, uuids):
    address = address.upper()
    adapter_path = "/org/bluez/" + adapter
    if adapter_path not in mockobject.objects:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.NoSuchAdapter", adapter)
    if address in peripheral.DEVICES:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.Exists", address)
    path = adapter_path + "/dev_" + address.replace(":", "_")
    props = {
        "Address": dbus.String(address),
        "AddressType": dbus.String("public"),
        "Alias": dbus.String(name or address.replace(":", "-")),
        "Paired": dbus.Boolean(False),
        "Bonded": dbus.Boolean(False),
        "Trusted": dbus.Boolean(False),
        "Blocked": dbus.Boolean(False),
        "LegacyPairing": dbus.Boolean(False),
        "Connected": dbus.Boolean(False),
        "ServicesResolved": dbus.Boolean(False),
        "Adapter": dbus.ObjectPath(adapter_path),
        "UUIDs": dbus.Array([str(u) for u in uuids], signature="s"),
        "RSSI": dbus.Int16(rssi),
        "ManufacturerData": peripheral.manufacturer_data(manufacturer_data),
        "ServiceData": peripheral.service_data(service_data),
        "AdvertisingFlags": dbus.Array(peripheral.ay(b"\x06"), signature="y"),
    }
    if name:
        props["Name"] = dbus.String(name)
    self.AddObject(
        path,
        peripheral.DEVICE_IFACE,
        props,
        [
            ("Connect", "", "", peripheral.dev_connect),
            ("Disconnect", "", "", peripheral.dev_disconnect),
            ("Pair", "", "", ""),
            ("CancelPairing", "", "", ""),
        ],
    )
    peripheral.DEVICES[address] = peripheral.Device(path, address)
    peripheral.emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sna{qay}a{say}", out_signature="")
def SetAdvertisement(self, address, rssi, manufacturer_data, service_data):
    dev = peripheral.device(address)
    peripheral.emit_changed(
        dev.obj,
        peripheral.DEVICE_IFACE,
        {
            "RSSI": dbus.Int16(rssi),
            "ManufacturerData": peripheral.manufacturer_data(manufacturer_data),
            "ServiceData": peripheral.service_data(service_data),
        },
    )


@dbus.service.method(CONTROL_IFACE, in_signature="sb", out_signature="")
def SetAdvertising(self, address, advertising):
    peripheral.device(address).advertising = bool(advertising)


@dbus.service.method(CONTROL_IFACE, in_signature="ss", out_signature="o")
def AddService(self, address, uuid):
    dev = peripheral.device(address)
    path = f"{dev.path}/service{dev.handle():04x}"
    self.AddObject(
        path,
        SERVICE_IFACE,
        {
            "UUID": dbus.String(uuid.lower()),
            "Device": dbus.ObjectPath(dev.path),
            "Primary": dbus.Boolean(True),
            "Includes": dbus.Array([], signature="o"),
        },
        [],
    )
    peripheral.emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="ssasay", out_signature="o")
def AddCharacteristic(self, service_path, uuid, flags, value):
    service = mockobject.objects[service_path]
    dev = next(d for d in peripheral.DEVICES.values() if service_path.startswith(d.path + "/"))
    path = f"{service_path}/char{dev.handle():04x}"
    self.AddObject(
        path,
        peripheral.CHAR_IFACE,
        {
            "UUID": dbus.String(uuid.lower()),
            "Service": dbus.ObjectPath(service.path),
            "Value": peripheral.ay(value),
            "Notifying": dbus.Boolean(False),
            "Flags": dbus.Array([str(f) for f in flags], signature="s"),
            "MTU": dbus.UInt16(23),
        },
        [
            ("ReadValue", "a{sv}", "ay", peripheral.char_read),
            ("WriteValue", "aya{sv}", "", peripheral.char_write),
            ("StartNotify", "", "", peripheral.char_start_notify),
            ("StopNotify", "", "", peripheral.char_stop_notify),
        ],
    )
    char = mockobject.objects[path]
    char.fake_address = dev.address
    dev.chars[uuid.lower()] = path
    peripheral.emit_added(path)
    if "notify" in flags or "indicate" in flags:
        desc_path = f"{path}/desc{dev.handle():04x}"
        self.AddObject(
            desc_path,
            DESC_IFACE,
            {
                "UUID": dbus.String(CCCD_UUID),
                "Characteristic": dbus.ObjectPath(path),
                "Value": peripheral.ay(b"\x00\x00"),
                "Flags": dbus.Array(["read", "write"], signature="s"),
            },
            [("ReadValue", "a{sv}", "ay", 'ret = dbus.Array([0, 0], signature="y")')],
        )
        peripheral.emit_added(desc_path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sssayayaay", out_signature="")
def AddResponder(self, address, write_uuid, notify_uuid, key, prefix, replies):
    """On a write to write_uuid whose plaintext starts with prefix, notify replies."""
    frames = [bytes(r) for r in replies]
    peripheral.device(address).responders.append(
        (write_uuid.lower(), notify_uuid.lower(), bytes(key), bytes(prefix), frames)
    )


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def ClearResponders(self, address):
    peripheral.device(address).responders.clear()


@dbus.service.method(CONTROL_IFACE, in_signature="ssaayu", out_signature="")
def SetStream(self, address, notify_uuid, frames, interval_ms):
    """While notifying on notify_uuid, send frames round-robin every interval_ms."""
    dev = peripheral.device(address)
    uuid = notify_uuid.lower()
    source = dev.stream_timers.pop(uuid, None)
    if source is not None:
        GLib.source_remove(source)
    if frames:
        dev.streams[uuid] = ([bytes(f) for f in frames], max(int(interval_ms), 1))
        if dev.chars.get(uuid) in dev.notifying:
            dev.start_stream(uuid)
    else:
        dev.streams.pop(uuid, None)


@dbus.service.method(CONTROL_IFACE, in_signature="ssay", out_signature="b")
def Notify(self, address, char_uuid, frame):
    return dbus.Boolean(peripheral.device(address).notify(char_uuid.lower(), bytes(frame)))


@dbus.service.method(CONTROL_IFACE, in_signature="ssay", out_signature="")
def SetCharValue(self, address, char_uuid, value):
    dev = peripheral.device(address)
    obj = mockobject.objects[dev.chars[char_uuid.lower()]]
    obj.props[peripheral.CHAR_IFACE]["Value"] = peripheral.ay(value)


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def DropLink(self, address):
    peripheral.device(address).drop()


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def DropOnNextWrite(self, address):
    peripheral.device(address).drop_on_write = True


@dbus.service.method(CONTROL_IFACE, in_signature="sssu", out_signature="")
def FailNextConnect(self, address, error_name, message, count):
    peripheral.device(address).connect_failures.extend(
        [(str(error_name), str(message))] * int(count)
    )


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="aay")
def GetWrites(self, address):
    return dbus.Array([peripheral.ay(w) for w in peripheral.device(address).writes], signature="ay")


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="a{sv}")
def GetDeviceState(self, address):
    dev = peripheral.device(address)
    return dbus.Dictionary(
        {
            "connected": dbus.Boolean(dev.connected),
            "connects": dbus.UInt32(dev.connects),
            "pending_failures": dbus.UInt32(len(dev.connect_failures)),
            "notifying": dbus.UInt32(len(dev.notifying)),
        },
        signature="sv",
    )


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="a{sv}")
def GetAdapterState(self, name):
    obj = mockobject.objects["/org/bluez/" + name]
    return dbus.Dictionary(
        {
            "discovering": dbus.Boolean(obj.props[ADAPTER_IFACE]["Discovering"]),
            "discovery_starts": dbus.UInt32(getattr(obj, "discovery_clients", 0)),
            "powered": dbus.Boolean(obj.props[ADAPTER_IFACE]["Powered"]),
            "power_log": dbus.Array(getattr(obj, "power_log", []), signature="s"),
            "stuck": dbus.String(peripheral.adapter_stuck(obj)),
        },
        signature="sv",
    )


@dbus.service.method(CONTROL_IFACE, in_signature="ss", out_signature="")
def SetAdapterStuck(self, name, mode):
    """mode "in-progress": Connect / StartDiscovery answer InProgress; "silent": discovery
    reports nothing; "": healthy. A power cycle (Powered false, then true) clears it."""
    if mode not in ("", "in-progress", "silent"):
        raise peripheral.error("com.batteryhawk.FakeBlueZ.BadMode", mode)
    mockobject.objects["/org/bluez/" + name].fake_stuck = str(mode)


@dbus.service.method(CONTROL_IFACE, in_signature="sbs", out_signature="")
def SetAdapterPower(self, name, powered, power_state):
    """Power the adapter on or off behind the daemon's back (power_state "off-blocked": rfkill)."""
    adapter = mockobject.objects["/org/bluez/" + name]
    adapter.rfkill_blocked = power_state == "off-blocked"
    changed = {"Powered": dbus.Boolean(powered), "PowerState": dbus.String(power_state)}
    if not powered:
        changed["Discovering"] = dbus.Boolean(False)
    peripheral.emit_changed(adapter, ADAPTER_IFACE, changed)


@dbus.service.method(CONTROL_IFACE, in_signature="", out_signature="b")
def Ping(self):
    return dbus.Boolean(True)


def load(mock, _parameters):
    mockobject.DBusMockObject.Set = _properties_set
    mock.AddObject("/org/bluez", AGENT_MANAGER_IFACE, {}, [
        ("RegisterAgent", "os", "", ""),
        ("RequestDefaultAgent", "o", "", ""),
        ("UnregisterAgent", "o", "", ""),
    ])
    GLib.timeout_add(READVERTISE_MS, _readvertise)

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
discovery, the control interface (com.batteryhawk.FakeBlueZ on /) that creates and
removes adapters, devices and GATT objects and scripts their behaviour, and load().
Control methods name a peripheral by its address: one peripheral may be heard by
several adapters, each with its own device object, RSSI and GATT tree
(bluez_views.py builds those). dbusmock picks up
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
views = _load_sibling("bluez_views")

BUS_NAME = "org.bluez"
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

CONTROL_IFACE = "com.batteryhawk.FakeBlueZ"
ADAPTER_IFACE = "org.bluez.Adapter1"
AGENT_MANAGER_IFACE = "org.bluez.AgentManager1"

READVERTISE_MS = 200


# --- org.bluez.Adapter1 --------------------------------------------------------------


def _readvertise():
    for adapter_path, obj in list(mockobject.objects.items()):
        if ADAPTER_IFACE not in obj.props or not obj.props[ADAPTER_IFACE]["Discovering"]:
            continue
        if peripheral.adapter_stuck(obj) == "silent":
            continue  # a wedged controller: discovery "runs" and reports nothing
        adapter = adapter_path.rsplit("/", 1)[-1]
        for dev in peripheral.DEVICES.values():
            path = dev.views.get(adapter)
            if path is None or not dev.advertising:
                continue
            if dev.connected:
                continue  # a connected peripheral stops advertising
            props = mockobject.objects[path].props[peripheral.DEVICE_IFACE]
            peripheral.emit_changed(
                mockobject.objects[path],
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
            if dev.link is not None and dev.link.startswith(adapter.path + "/"):
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
    """An adapter appears (a USB dongle plugged in); one that was removed hears again
    what it heard before."""
    path = "/org/bluez/" + name
    if path in mockobject.objects:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.Exists", name)
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
    views.restore_adapter_views(name)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def RemoveAdapter(self, name):
    """The adapter goes away as when a USB dongle is unplugged: its links drop, and
    InterfacesRemoved is sent for its devices' objects and then the adapter."""
    path = "/org/bluez/" + name
    if path not in mockobject.objects:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.NoSuchAdapter", name)
    views.forget_adapter_views(name)
    interfaces = [str(i) for i in mockobject.objects[path].props]
    self.RemoveObject(path)
    views.emit_removed(path, interfaces)


@dbus.service.method(CONTROL_IFACE, in_signature="sssna{qay}a{say}as", out_signature="o")
def AddDevice(self, adapter, address, name, rssi, manufacturer_data, service_data, uuids):
    """A peripheral heard by adapter at rssi; the same address again on another adapter
    makes that adapter hear it too (its own object, its own RSSI, the same peripheral)."""
    address = address.upper()
    adapter_path = "/org/bluez/" + adapter
    if adapter_path not in mockobject.objects:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.NoSuchAdapter", adapter)
    dev = peripheral.DEVICES.get(address)
    if dev is not None and adapter in dev.views:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.Exists", address)
    if dev is None:
        dev = peripheral.Device(address, str(name), [str(u) for u in uuids],
                                {int(k): bytes(v) for k, v in manufacturer_data.items()},
                                {str(k): bytes(v) for k, v in service_data.items()})
        peripheral.DEVICES[address] = dev
    return dbus.ObjectPath(views.add_view(dev, adapter, int(rssi)))


@dbus.service.method(CONTROL_IFACE, in_signature="ssn", out_signature="")
def SetRSSI(self, address, adapter, rssi):
    """The RSSI at which adapter hears the peripheral from now on."""
    dev = peripheral.device(address)
    if adapter not in dev.views:
        raise peripheral.error("com.batteryhawk.FakeBlueZ.NoSuchAdapter", adapter)
    dev.rssi[adapter] = int(rssi)
    peripheral.emit_changed(mockobject.objects[dev.views[adapter]], peripheral.DEVICE_IFACE,
                            {"RSSI": dbus.Int16(rssi)})


@dbus.service.method(CONTROL_IFACE, in_signature="sna{qay}a{say}", out_signature="")
def SetAdvertisement(self, address, rssi, manufacturer_data, service_data):
    """New advert data on every adapter that hears the peripheral; rssi is the RSSI on
    the first of them (the others keep theirs: SetRSSI)."""
    dev = peripheral.device(address)
    dev.manufacturer = {int(k): bytes(v) for k, v in manufacturer_data.items()}
    dev.service = {str(k): bytes(v) for k, v in service_data.items()}
    for index, (adapter, path) in enumerate(dev.views.items()):
        changed = {
            "ManufacturerData": peripheral.manufacturer_data(manufacturer_data),
            "ServiceData": peripheral.service_data(service_data),
        }
        if index == 0:
            dev.rssi[adapter] = int(rssi)
            changed["RSSI"] = dbus.Int16(rssi)
        peripheral.emit_changed(mockobject.objects[path], peripheral.DEVICE_IFACE, changed)


@dbus.service.method(CONTROL_IFACE, in_signature="sb", out_signature="")
def SetAdvertising(self, address, advertising):
    peripheral.device(address).advertising = bool(advertising)


@dbus.service.method(CONTROL_IFACE, in_signature="ss", out_signature="o")
def AddService(self, address, uuid):
    return views.add_service(peripheral.device(address), uuid)


@dbus.service.method(CONTROL_IFACE, in_signature="ssasay", out_signature="o")
def AddCharacteristic(self, service_path, uuid, flags, value):
    return views.add_characteristic(str(service_path), str(uuid), list(flags), bytes(value))


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
    views.set_char_value(peripheral.device(address), char_uuid, value)


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
            "adapter": dbus.String(peripheral.adapter_name(dev.link) if dev.link else ""),
            "connects_by_adapter": dbus.Dictionary(
                {k: dbus.UInt32(v) for k, v in dev.connects_by_adapter.items()},
                signature="su"),
            "heard_on": dbus.Array(list(dev.views), signature="s"),
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

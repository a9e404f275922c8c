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

The adapter cannot be added in load() (the root object is not registered yet): the
controller calls AddAdapter over D-Bus after start-up.
"""

import dbus
import dbus.service
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from gi.repository import GLib

BUS_NAME = "org.bluez"
MAIN_OBJ = "/"
SYSTEM_BUS = True
IS_OBJECT_MANAGER = True

CONTROL_IFACE = "com.batteryhawk.FakeBlueZ"
ADAPTER_IFACE = "org.bluez.Adapter1"
DEVICE_IFACE = "org.bluez.Device1"
SERVICE_IFACE = "org.bluez.GattService1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"
DESC_IFACE = "org.bluez.GattDescriptor1"
AGENT_MANAGER_IFACE = "org.bluez.AgentManager1"

READVERTISE_MS = 200
NOTIFY_GAP_MS = 5
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"

# address -> _Device; module state lives as long as the mock process
DEVICES = {}


def _error(name, message):
    return dbus.exceptions.DBusException(message, name=name)


def _bytes(value):
    return dbus.Array([dbus.Byte(b) for b in bytes(value)], signature="y")


def _manufacturer_data(data):
    return dbus.Dictionary(
        {dbus.UInt16(k): dbus.Array(_bytes(v), signature="y") for k, v in data.items()},
        signature="qv",
    )


def _service_data(data):
    return dbus.Dictionary(
        {dbus.String(k): dbus.Array(_bytes(v), signature="y") for k, v in data.items()},
        signature="sv",
    )


def _emit_changed(obj, interface, changed):
    obj.props[interface].update(changed)
    obj.EmitSignal(
        dbus.PROPERTIES_IFACE,
        "PropertiesChanged",
        "sa{sv}as",
        [interface, dbus.Dictionary(changed, signature="sv"), dbus.Array([], signature="s")],
    )


def _emit_added(path):
    manager = mockobject.objects["/"]
    manager.EmitSignal(
        OBJECT_MANAGER_IFACE,
        "InterfacesAdded",
        "oa{sa{sv}}",
        [dbus.ObjectPath(path), mockobject.objects[path].props],
    )


def _aes(key):
    # imported lazily so a mock without python3-cryptography still serves plain devices
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    return Cipher(algorithms.AES(bytes(key)), modes.CBC(bytes(16)))


def _decrypt(key, data):
    data = bytes(data)
    if not key:
        return data
    if len(data) % 16:
        return b""
    dec = _aes(key).decryptor()
    return dec.update(data) + dec.finalize()


class _Device:
    """Peripheral-side state the D-Bus objects delegate to."""

    def __init__(self, path, address):
        self.path = path
        self.address = address
        self.advertising = True
        self.next_handle = 0x000C
        self.chars = {}  # uuid -> char path
        self.notifying = set()  # char paths
        self.responders = []  # (write_uuid, notify_uuid, key, prefix, replies)
        self.streams = {}  # notify uuid -> (frames, interval_ms)
        self.stream_timers = {}  # notify uuid -> GLib source id
        self.connect_failures = []  # (error name, message)
        self.drop_on_write = False
        self.writes = []
        self.connects = 0

    @property
    def obj(self):
        return mockobject.objects[self.path]

    @property
    def connected(self):
        return bool(self.obj.props[DEVICE_IFACE]["Connected"])

    def handle(self):
        handle = self.next_handle
        self.next_handle += 1
        return handle

    def notify(self, char_uuid, frame):
        path = self.chars.get(char_uuid)
        if path is None or path not in self.notifying or not self.connected:
            return False
        value = dbus.Array(_bytes(frame), signature="y")
        _emit_changed(mockobject.objects[path], CHAR_IFACE, {"Value": value})
        return True

    def notify_later(self, char_uuid, frames):
        frames = list(frames)

        def send_next():
            if frames and self.connected:
                self.notify(char_uuid, frames.pop(0))
            return bool(frames) and self.connected

        GLib.timeout_add(NOTIFY_GAP_MS, send_next)

    def start_stream(self, char_uuid):
        if char_uuid not in self.streams or char_uuid in self.stream_timers:
            return
        frames, interval = self.streams[char_uuid]
        state = {"i": 0}

        def tick():
            if not self.connected or self.chars.get(char_uuid) not in self.notifying:
                self.stream_timers.pop(char_uuid, None)
                return False
            self.notify(char_uuid, frames[state["i"] % len(frames)])
            state["i"] += 1
            return True

        self.stream_timers[char_uuid] = GLib.timeout_add(interval, tick)

    def stop_streams(self):
        for source in self.stream_timers.values():
            GLib.source_remove(source)
        self.stream_timers.clear()

    def drop(self):
        if not self.connected:
            return
        self.stop_streams()
        for path in list(self.notifying):
            _emit_changed(mockobject.objects[path], CHAR_IFACE, {"Notifying": dbus.Boolean(False)})
        self.notifying.clear()
        _emit_changed(
            self.obj,
            DEVICE_IFACE,
            {"Connected": dbus.Boolean(False), "ServicesResolved": dbus.Boolean(False)},
        )

    def on_write(self, char_uuid, value):
        self.writes.append(bytes(value))
        if self.drop_on_write:
            self.drop_on_write = False
            GLib.idle_add(lambda: self.drop() and False)
            return
        for write_uuid, notify_uuid, key, prefix, replies in self.responders:
            if write_uuid != char_uuid:
                continue
            plain = _decrypt(key, value)
            if plain.startswith(prefix):
                self.notify_later(notify_uuid, replies)
                return


def _device(address):
    try:
        return DEVICES[address.upper()]
    except KeyError:
        raise _error("com.batteryhawk.FakeBlueZ.NoSuchDevice", address) from None


# --- org.bluez.Device1 ---------------------------------------------------------------


def _dev_connect(obj):
    dev = DEVICES[str(obj.props[DEVICE_IFACE]["Address"])]
    if dev.connect_failures:
        name, message = dev.connect_failures.pop(0)
        raise _error(name, message)
    if dev.connected:
        raise _error("org.bluez.Error.AlreadyConnected", "Already Connected")
    dev.connects += 1
    _emit_changed(obj, DEVICE_IFACE, {"Connected": dbus.Boolean(True)})

    def resolved():
        if dev.connected:
            _emit_changed(obj, DEVICE_IFACE, {"ServicesResolved": dbus.Boolean(True)})
        return False

    # after the Connect reply, as BlueZ does once discovery of the GATT db finishes
    GLib.idle_add(resolved)


def _dev_disconnect(obj):
    dev = DEVICES[str(obj.props[DEVICE_IFACE]["Address"])]
    GLib.idle_add(lambda: dev.drop() and False)


# --- org.bluez.GattCharacteristic1 ---------------------------------------------------


def _char_owner(obj):
    return DEVICES[obj.fake_address], str(obj.props[CHAR_IFACE]["UUID"])


def _char_read(obj, _options):
    dev, _uuid = _char_owner(obj)
    if not dev.connected:
        raise _error("org.bluez.Error.Failed", "Not connected")
    return dbus.Array(obj.props[CHAR_IFACE]["Value"], signature="y")


def _char_write(obj, value, _options):
    dev, uuid = _char_owner(obj)
    if not dev.connected:
        raise _error("org.bluez.Error.Failed", "Not connected")
    obj.props[CHAR_IFACE]["Value"] = _bytes(value)
    dev.on_write(uuid, bytes(value))


def _char_start_notify(obj):
    dev, uuid = _char_owner(obj)
    if not dev.connected:
        raise _error("org.bluez.Error.Failed", "Not connected")
    dev.notifying.add(obj.path)
    _emit_changed(obj, CHAR_IFACE, {"Notifying": dbus.Boolean(True)})
    dev.start_stream(uuid)


def _char_stop_notify(obj):
    dev, _uuid = _char_owner(obj)
    dev.notifying.discard(obj.path)
    _emit_changed(obj, CHAR_IFACE, {"Notifying": dbus.Boolean(False)})


# --- control interface on / ----------------------------------------------------------


def _readvertise():
    for adapter_path, obj in list(mockobject.objects.items()):
        if ADAPTER_IFACE not in obj.props or not obj.props[ADAPTER_IFACE]["Discovering"]:
            continue
        for dev in DEVICES.values():
            if not dev.path.startswith(adapter_path + "/") or not dev.advertising:
                continue
            if dev.connected:
                continue  # a connected peripheral stops advertising
            props = dev.obj.props[DEVICE_IFACE]
            _emit_changed(
                dev.obj,
                DEVICE_IFACE,
                {
                    "RSSI": props["RSSI"],
                    "ManufacturerData": props["ManufacturerData"],
                    "ServiceData": props["ServiceData"],
                },
            )
    return True


def _start_discovery(adapter):
    adapter.discovery_clients = getattr(adapter, "discovery_clients", 0) + 1
    _emit_changed(adapter, ADAPTER_IFACE, {"Discovering": dbus.Boolean(True)})
    GLib.idle_add(lambda: _readvertise() and False)


def _stop_discovery(adapter):
    if not adapter.props[ADAPTER_IFACE]["Discovering"]:
        raise _error("org.bluez.Error.Failed", "No discovery started")
    _emit_changed(adapter, ADAPTER_IFACE, {"Discovering": dbus.Boolean(False)})


def _remove_device(adapter, path):
    raise _error("org.bluez.Error.NotSupported", "the fake keeps its devices")


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
    _emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sssna{qay}a{say}as", out_signature="o")
def AddDevice(self, adapter, address, name, rssi, manufacturer_data, service_data, uuids):
    address = address.upper()
    adapter_path = "/org/bluez/" + adapter
    if adapter_path not in mockobject.objects:
        raise _error("com.batteryhawk.FakeBlueZ.NoSuchAdapter", adapter)
    if address in DEVICES:
        raise _error("com.batteryhawk.FakeBlueZ.Exists", address)
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
        "ManufacturerData": _manufacturer_data(manufacturer_data),
        "ServiceData": _service_data(service_data),
        "AdvertisingFlags": dbus.Array(_bytes(b"\x06"), signature="y"),
    }
    if name:
        props["Name"] = dbus.String(name)
    self.AddObject(
        path,
        DEVICE_IFACE,
        props,
        [
            ("Connect", "", "", _dev_connect),
            ("Disconnect", "", "", _dev_disconnect),
            ("Pair", "", "", ""),
            ("CancelPairing", "", "", ""),
        ],
    )
    DEVICES[address] = _Device(path, address)
    _emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sna{qay}a{say}", out_signature="")
def SetAdvertisement(self, address, rssi, manufacturer_data, service_data):
    dev = _device(address)
    _emit_changed(
        dev.obj,
        DEVICE_IFACE,
        {
            "RSSI": dbus.Int16(rssi),
            "ManufacturerData": _manufacturer_data(manufacturer_data),
            "ServiceData": _service_data(service_data),
        },
    )


@dbus.service.method(CONTROL_IFACE, in_signature="sb", out_signature="")
def SetAdvertising(self, address, advertising):
    _device(address).advertising = bool(advertising)


@dbus.service.method(CONTROL_IFACE, in_signature="ss", out_signature="o")
def AddService(self, address, uuid):
    dev = _device(address)
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
    _emit_added(path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="ssasay", out_signature="o")
def AddCharacteristic(self, service_path, uuid, flags, value):
    service = mockobject.objects[service_path]
    dev = next(d for d in DEVICES.values() if service_path.startswith(d.path + "/"))
    path = f"{service_path}/char{dev.handle():04x}"
    self.AddObject(
        path,
        CHAR_IFACE,
        {
            "UUID": dbus.String(uuid.lower()),
            "Service": dbus.ObjectPath(service.path),
            "Value": _bytes(value),
            "Notifying": dbus.Boolean(False),
            "Flags": dbus.Array([str(f) for f in flags], signature="s"),
            "MTU": dbus.UInt16(23),
        },
        [
            ("ReadValue", "a{sv}", "ay", _char_read),
            ("WriteValue", "aya{sv}", "", _char_write),
            ("StartNotify", "", "", _char_start_notify),
            ("StopNotify", "", "", _char_stop_notify),
        ],
    )
    char = mockobject.objects[path]
    char.fake_address = dev.address
    dev.chars[uuid.lower()] = path
    _emit_added(path)
    if "notify" in flags or "indicate" in flags:
        desc_path = f"{path}/desc{dev.handle():04x}"
        self.AddObject(
            desc_path,
            DESC_IFACE,
            {
                "UUID": dbus.String(CCCD_UUID),
                "Characteristic": dbus.ObjectPath(path),
                "Value": _bytes(b"\x00\x00"),
                "Flags": dbus.Array(["read", "write"], signature="s"),
            },
            [("ReadValue", "a{sv}", "ay", 'ret = dbus.Array([0, 0], signature="y")')],
        )
        _emit_added(desc_path)
    return dbus.ObjectPath(path)


@dbus.service.method(CONTROL_IFACE, in_signature="sssayayaay", out_signature="")
def AddResponder(self, address, write_uuid, notify_uuid, key, prefix, replies):
    """On a write to write_uuid whose plaintext starts with prefix, notify replies."""
    frames = [bytes(r) for r in replies]
    _device(address).responders.append(
        (write_uuid.lower(), notify_uuid.lower(), bytes(key), bytes(prefix), frames)
    )


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def ClearResponders(self, address):
    _device(address).responders.clear()


@dbus.service.method(CONTROL_IFACE, in_signature="ssaayu", out_signature="")
def SetStream(self, address, notify_uuid, frames, interval_ms):
    """While notifying on notify_uuid, send frames round-robin every interval_ms."""
    dev = _device(address)
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
    return dbus.Boolean(_device(address).notify(char_uuid.lower(), bytes(frame)))


@dbus.service.method(CONTROL_IFACE, in_signature="ssay", out_signature="")
def SetCharValue(self, address, char_uuid, value):
    dev = _device(address)
    obj = mockobject.objects[dev.chars[char_uuid.lower()]]
    obj.props[CHAR_IFACE]["Value"] = _bytes(value)


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def DropLink(self, address):
    _device(address).drop()


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="")
def DropOnNextWrite(self, address):
    _device(address).drop_on_write = True


@dbus.service.method(CONTROL_IFACE, in_signature="sssu", out_signature="")
def FailNextConnect(self, address, error_name, message, count):
    _device(address).connect_failures.extend([(str(error_name), str(message))] * int(count))


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="aay")
def GetWrites(self, address):
    return dbus.Array([_bytes(w) for w in _device(address).writes], signature="ay")


@dbus.service.method(CONTROL_IFACE, in_signature="s", out_signature="a{sv}")
def GetDeviceState(self, address):
    dev = _device(address)
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
        },
        signature="sv",
    )


@dbus.service.method(CONTROL_IFACE, in_signature="", out_signature="b")
def Ping(self):
    return dbus.Boolean(True)


def load(mock, _parameters):
    mock.AddObject("/org/bluez", AGENT_MANAGER_IFACE, {}, [
        ("RegisterAgent", "os", "", ""),
        ("RequestDefaultAgent", "o", "", ""),
        ("UnregisterAgent", "o", "", ""),
    ])
    GLib.timeout_add(READVERTISE_MS, _readvertise)

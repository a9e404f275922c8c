"""The simulated peripheral behind bluez_template.py: device state and GATT behaviour.

Runs inside the dbusmock process under the system /usr/bin/python3, never inside the
venv. bluez_template.py loads this file by path (dbusmock execs a template from its
file, so the template's directory is not on sys.path); it holds no D-Bus service
methods of its own, those live in the template where dbusmock picks them up.

What lives here:

- the D-Bus value helpers (ay, a{qv} / a{sv} advert dictionaries, PropertiesChanged and
  InterfacesAdded emitters, BlueZ-style errors);
- Device: per-peripheral state (GATT characteristic paths, subscriptions, responders,
  notification streams, scripted connect failures, recorded writes) and how it reacts
  to writes, subscriptions and link drops;
- DEVICES, the address -> Device registry (one Device per peripheral, however many
  adapters hear it), and the org.bluez.Device1 /
  org.bluez.GattCharacteristic1 method handlers the template wires into its objects.
"""

import dbus
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from gi.repository import GLib

DEVICE_IFACE = "org.bluez.Device1"
CHAR_IFACE = "org.bluez.GattCharacteristic1"

NOTIFY_GAP_MS = 5

# address -> Device; module state lives as long as the mock process
DEVICES = {}


def error(name, message):
    return dbus.exceptions.DBusException(message, name=name)


def ay(value):
    return dbus.Array([dbus.Byte(b) for b in bytes(value)], signature="y")


def manufacturer_data(data):
    return dbus.Dictionary(
        {dbus.UInt16(k): dbus.Array(ay(v), signature="y") for k, v in data.items()},
        signature="qv",
    )


def service_data(data):
    return dbus.Dictionary(
        {dbus.String(k): dbus.Array(ay(v), signature="y") for k, v in data.items()},
        signature="sv",
    )


def emit_changed(obj, interface, changed):
    obj.props[interface].update(changed)
    obj.EmitSignal(
        dbus.PROPERTIES_IFACE,
        "PropertiesChanged",
        "sa{sv}as",
        [interface, dbus.Dictionary(changed, signature="sv"), dbus.Array([], signature="s")],
    )


def emit_added(path):
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


class Device:
    """Peripheral-side state the D-Bus objects delegate to.

    One physical peripheral (one address) may be heard by several adapters: each adapter
    that hears it has a view of it, its own org.bluez.Device1 object under
    /org/bluez/hciN with its own RSSI and its own copy of the GATT tree (as BlueZ does).
    The peripheral holds one link at a time, through the view that connected.
    """

    def __init__(self, address, name, uuids, manufacturer, service):
        self.address = address
        self.name = name
        self.uuids = list(uuids)
        self.manufacturer = dict(manufacturer)  # company id -> bytes
        self.service = dict(service)  # uuid -> bytes
        self.views = {}  # adapter name -> device object path, in the order added
        self.rssi = {}  # adapter name -> RSSI there; kept while the adapter is away
        self.gatt = []  # how to build the GATT tree on a view (bluez_views.py)
        self.view_chars = {}  # device object path -> {uuid: char path}
        self.link = None  # the device object path that holds the connection
        self.advertising = True
        self.next_handle = 0x000C
        self.notifying = set()  # char paths
        self.responders = []  # (write_uuid, notify_uuid, key, prefix, replies)
        self.streams = {}  # notify uuid -> (frames, interval_ms)
        self.stream_timers = {}  # notify uuid -> GLib source id
        self.connect_failures = []  # (error name, message)
        self.drop_on_write = False
        self.writes = []
        self.connects = 0
        self.connects_by_adapter = {}  # adapter name -> successful Connect calls there

    @property
    def path(self):
        """The device object of the link, else of the first adapter that hears it."""
        if self.link is not None:
            return self.link
        return next(iter(self.views.values()), None)

    @property
    def obj(self):
        return mockobject.objects[self.path]

    @property
    def chars(self):
        """uuid -> char path on the view of the link (else the first view)."""
        return self.view_chars.get(self.path, {})

    @property
    def connected(self):
        return self.link is not None

    def handle(self):
        handle = self.next_handle
        self.next_handle += 1
        return handle

    def notify(self, char_uuid, frame):
        path = self.chars.get(char_uuid)
        if path is None or path not in self.notifying or not self.connected:
            return False
        value = dbus.Array(ay(frame), signature="y")
        emit_changed(mockobject.objects[path], CHAR_IFACE, {"Value": value})
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
            if path in mockobject.objects:
                emit_changed(mockobject.objects[path], CHAR_IFACE,
                             {"Notifying": dbus.Boolean(False)})
        self.notifying.clear()
        link, self.link = self.link, None
        if link in mockobject.objects:
            emit_changed(
                mockobject.objects[link],
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


def adapter_name(path):
    """hciN of an adapter or device object path."""
    return path.split("/")[3]


def adapter_stuck(adapter):
    """The adapter's scripted fault: "", "in-progress" or "silent"."""
    return getattr(adapter, "fake_stuck", "")


def check_adapter(adapter):
    """Raise what BlueZ answers on an adapter that is off or wedged."""
    if not adapter.props["org.bluez.Adapter1"]["Powered"]:
        raise error("org.bluez.Error.NotReady", "Resource Not Ready")
    if adapter_stuck(adapter) == "in-progress":
        raise error("org.bluez.Error.InProgress", "Operation already in progress")


def device(address):
    try:
        return DEVICES[address.upper()]
    except KeyError:
        raise error("com.batteryhawk.FakeBlueZ.NoSuchDevice", address) from None


# --- org.bluez.Device1 ---------------------------------------------------------------


def dev_connect(obj):
    dev = DEVICES[str(obj.props[DEVICE_IFACE]["Address"])]
    check_adapter(mockobject.objects[str(obj.props[DEVICE_IFACE]["Adapter"])])
    if dev.connected and dev.link != obj.path:
        # held through another adapter: the peripheral does not advertise, so the
        # controller's connection attempt finds nobody and gives up
        raise error("org.bluez.Error.Failed", "Software caused connection abort")
    if dev.connect_failures:
        name, message = dev.connect_failures.pop(0)
        if message == "le-connection-abort-by-local":
            # BlueZ connected and then the host aborted: Connected goes up and down
            # before the error (bleak waits for that before it retries by itself)
            emit_changed(obj, DEVICE_IFACE, {"Connected": dbus.Boolean(True)})
            emit_changed(obj, DEVICE_IFACE, {"Connected": dbus.Boolean(False)})
        raise error(name, message)
    if dev.connected:
        raise error("org.bluez.Error.AlreadyConnected", "Already Connected")
    dev.connects += 1
    adapter = adapter_name(obj.path)
    dev.connects_by_adapter[adapter] = dev.connects_by_adapter.get(adapter, 0) + 1
    dev.link = obj.path
    emit_changed(obj, DEVICE_IFACE, {"Connected": dbus.Boolean(True)})

    def resolved():
        if dev.connected:
            emit_changed(obj, DEVICE_IFACE, {"ServicesResolved": dbus.Boolean(True)})
        return False

    # after the Connect reply, as BlueZ does once discovery of the GATT db finishes
    GLib.idle_add(resolved)


def dev_disconnect(obj):
    dev = DEVICES[str(obj.props[DEVICE_IFACE]["Address"])]
    if dev.link == obj.path:
        GLib.idle_add(lambda: dev.drop() and False)


# --- org.bluez.GattCharacteristic1 ---------------------------------------------------


def _char_owner(obj):
    return DEVICES[obj.fake_address], str(obj.props[CHAR_IFACE]["UUID"])


def _linked(dev, obj):
    """Whether obj (a characteristic) belongs to the view that holds the link."""
    return dev.connected and obj.path.startswith(dev.link + "/")


def char_read(obj, _options):
    dev, _uuid = _char_owner(obj)
    if not _linked(dev, obj):
        raise error("org.bluez.Error.Failed", "Not connected")
    return dbus.Array(obj.props[CHAR_IFACE]["Value"], signature="y")


def char_write(obj, value, _options):
    dev, uuid = _char_owner(obj)
    if not _linked(dev, obj):
        raise error("org.bluez.Error.Failed", "Not connected")
    obj.props[CHAR_IFACE]["Value"] = ay(value)
    dev.on_write(uuid, bytes(value))


def char_start_notify(obj):
    dev, uuid = _char_owner(obj)
    if not _linked(dev, obj):
        raise error("org.bluez.Error.Failed", "Not connected")
    dev.notifying.add(obj.path)
    emit_changed(obj, CHAR_IFACE, {"Notifying": dbus.Boolean(True)})
    dev.start_stream(uuid)


def char_stop_notify(obj):
    dev, _uuid = _char_owner(obj)
    dev.notifying.discard(obj.path)
    emit_changed(obj, CHAR_IFACE, {"Notifying": dbus.Boolean(False)})

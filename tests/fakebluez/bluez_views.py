"""The D-Bus objects of the fake's peripherals, one view per adapter that hears them.

Runs inside the dbusmock process under the system /usr/bin/python3 (loaded by path by
bluez_template.py, like bluez_peripheral.py). BlueZ gives every adapter its own
org.bluez.Device1 object for a peripheral it hears (/org/bluez/hciN/dev_XX_..., with
the RSSI that adapter measures) and its own copy of the GATT tree below it once
services are resolved; bleak connects through whichever of those objects it was handed.
So a peripheral here keeps a recipe of its GATT tree and builds it on every view.

An adapter that goes away (a USB dongle unplugged) takes its views with it: BlueZ
sends InterfacesRemoved for each GATT object, each device and then the adapter. When it
comes back (InterfacesAdded), the peripherals it heard before are heard again.
"""

import dbus
from dbusmock import OBJECT_MANAGER_IFACE, mockobject
from fakebluez_bluez_peripheral import (  # the template loads bluez_peripheral first
    CHAR_IFACE,
    DEVICE_IFACE,
    DEVICES,
    ay,
    char_read,
    char_start_notify,
    char_stop_notify,
    char_write,
    dev_connect,
    dev_disconnect,
    emit_added,
    manufacturer_data,
    service_data,
)

SERVICE_IFACE = "org.bluez.GattService1"
DESC_IFACE = "org.bluez.GattDescriptor1"
CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"


def _root():
    return mockobject.objects["/"]


def emit_removed(path, interfaces):
    _root().EmitSignal(OBJECT_MANAGER_IFACE, "InterfacesRemoved", "oas",
                       [dbus.ObjectPath(path), dbus.Array(interfaces, signature="s")])


def _device_props(dev, adapter, rssi):
    adapter_path = "/org/bluez/" + adapter
    props = {
        "Address": dbus.String(dev.address),
        "AddressType": dbus.String("public"),
        "Alias": dbus.String(dev.name or dev.address.replace(":", "-")),
        "Paired": dbus.Boolean(False),
        "Bonded": dbus.Boolean(False),
        "Trusted": dbus.Boolean(False),
        "Blocked": dbus.Boolean(False),
        "LegacyPairing": dbus.Boolean(False),
        "Connected": dbus.Boolean(False),
        "ServicesResolved": dbus.Boolean(False),
        "Adapter": dbus.ObjectPath(adapter_path),
        "UUIDs": dbus.Array([str(u) for u in dev.uuids], signature="s"),
        "RSSI": dbus.Int16(rssi),
        "ManufacturerData": manufacturer_data(dev.manufacturer),
        "ServiceData": service_data(dev.service),
        "AdvertisingFlags": dbus.Array(ay(b"\x06"), signature="y"),
    }
    if dev.name:
        props["Name"] = dbus.String(dev.name)
    return props


def add_view(dev, adapter, rssi):
    """The peripheral as heard by adapter (hciN): its device object and GATT tree."""
    path = "/org/bluez/" + adapter + "/dev_" + dev.address.replace(":", "_")
    dev.rssi[adapter] = int(rssi)
    _root().AddObject(path, DEVICE_IFACE, _device_props(dev, adapter, rssi), [
        ("Connect", "", "", dev_connect),
        ("Disconnect", "", "", dev_disconnect),
        ("Pair", "", "", ""),
        ("CancelPairing", "", "", ""),
    ])
    dev.views[adapter] = path
    dev.view_chars[path] = {}
    emit_added(path)
    for step in dev.gatt:
        _build(dev, path, step)
    return path


def remove_view(dev, adapter):
    """The adapter no longer hears the peripheral (it went away): its objects go."""
    path = dev.views.pop(adapter, None)
    if path is None:
        return
    if dev.link == path:
        dev.drop()
    below = sorted((p for p in mockobject.objects if p.startswith(path + "/")),
                   key=len, reverse=True)
    for obj_path in [*below, path]:
        interfaces = [str(i) for i in mockobject.objects[obj_path].props]
        _root().RemoveObject(obj_path)
        emit_removed(obj_path, interfaces)
    dev.view_chars.pop(path, None)
    dev.notifying = {p for p in dev.notifying if not p.startswith(path + "/")}


def _build(dev, view, step):
    kind = step[0]
    if kind == "service":
        _, rel, uuid = step
        _root().AddObject(view + rel, SERVICE_IFACE, {
            "UUID": dbus.String(uuid),
            "Device": dbus.ObjectPath(view),
            "Primary": dbus.Boolean(True),
            "Includes": dbus.Array([], signature="o"),
        }, [])
        emit_added(view + rel)
        return
    _, rel, service_rel, uuid, flags, value, desc_rel = step
    path = view + rel
    _root().AddObject(path, CHAR_IFACE, {
        "UUID": dbus.String(uuid),
        "Service": dbus.ObjectPath(view + service_rel),
        "Value": ay(value),
        "Notifying": dbus.Boolean(False),
        "Flags": dbus.Array([str(f) for f in flags], signature="s"),
        "MTU": dbus.UInt16(23),
    }, [
        ("ReadValue", "a{sv}", "ay", char_read),
        ("WriteValue", "aya{sv}", "", char_write),
        ("StartNotify", "", "", char_start_notify),
        ("StopNotify", "", "", char_stop_notify),
    ])
    mockobject.objects[path].fake_address = dev.address
    dev.view_chars[view][uuid] = path
    emit_added(path)
    if desc_rel is not None:
        _root().AddObject(view + desc_rel, DESC_IFACE, {
            "UUID": dbus.String(CCCD_UUID),
            "Characteristic": dbus.ObjectPath(path),
            "Value": ay(b"\x00\x00"),
            "Flags": dbus.Array(["read", "write"], signature="s"),
        }, [("ReadValue", "a{sv}", "ay", 'ret = dbus.Array([0, 0], signature="y")')])
        emit_added(view + desc_rel)


def _relative(dev, path):
    for view in dev.views.values():
        if path.startswith(view + "/"):
            return path[len(view):]
    raise KeyError(path)


def add_service(dev, uuid):
    """A primary service on every view; returns its path on the first view."""
    step = ("service", f"/service{dev.handle():04x}", uuid.lower())
    return _add_step(dev, step)


def add_characteristic(service_path, uuid, flags, value):
    """A characteristic (and its CCCD if it notifies) under a service, on every view."""
    dev = next(d for d in DEVICES.values()
               if any(service_path.startswith(v + "/") for v in d.views.values()))
    service_rel = _relative(dev, service_path)
    rel = f"{service_rel}/char{dev.handle():04x}"
    desc_rel = None
    if "notify" in flags or "indicate" in flags:
        desc_rel = f"{rel}/desc{dev.handle():04x}"
    step = ("char", rel, service_rel, uuid.lower(), [str(f) for f in flags], bytes(value),
            desc_rel)
    return _add_step(dev, step)


def _add_step(dev, step):
    dev.gatt.append(step)
    for view in dev.views.values():
        _build(dev, view, step)
    return dbus.ObjectPath(dev.path + step[1])


def set_char_value(dev, uuid, value):
    for chars in dev.view_chars.values():
        path = chars.get(uuid.lower())
        if path is not None:
            mockobject.objects[path].props[CHAR_IFACE]["Value"] = ay(value)


def forget_adapter_views(adapter):
    """Before an adapter object goes: every view on it goes first, as BlueZ does."""
    for dev in DEVICES.values():
        remove_view(dev, adapter)


def restore_adapter_views(adapter):
    """An adapter came (back): it hears again what it heard before it went away."""
    for dev in DEVICES.values():
        if adapter in dev.rssi and adapter not in dev.views:
            add_view(dev, adapter, dev.rssi[adapter])

"""The checks of a configuration that span several keys or touch the system: adapters,
devices, proxies, the MQTT password and TLS files, storage.path. config.py's
parse_config runs them after the loader has built the typed Config; each reports every
fault it finds (ConfigError with the key and the fix) through ``report``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import re
import ssl
import string
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from battery_hawk.errors import ConfigError

if TYPE_CHECKING:
    from battery_hawk.config import (
        BluetoothConfig,
        Config,
        DeviceConfig,
        EsphomeProxyConfig,
        MqttConfig,
        TLSConfig,
    )

__all__ = [
    "CREDENTIALS_ENV",
    "PASSWORD_CREDENTIAL",
    "PASSWORD_ENV",
    "check_adapters",
    "check_devices",
    "check_proxies",
    "check_storage",
    "check_tls",
    "expand_tls",
    "proxy_key_problem",
    "resolve_password",
    "with_storage_path",
]

PASSWORD_ENV = "BATTERY_HAWK_MQTT_PASSWORD"
# systemd's credentials: LoadCredential=mqtt:/etc/battery-hawk/mqtt-password puts the file
# at $CREDENTIALS_DIRECTORY/mqtt (systemd.exec(5), "Credentials").
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
PASSWORD_CREDENTIAL = "mqtt"

_ADAPTER = re.compile(r"hci\d{1,3}|(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")


def check_adapters(bt: BluetoothConfig, file: str | None,
                    report: Callable[[ConfigError], None]) -> None:
    """bluetooth.adapter / bluetooth.adapters: names or MACs, one key, each adapter once."""
    if bt.adapter is not None and bt.adapters is not None:
        report(ConfigError(
            "give bluetooth.adapter (one adapter) or bluetooth.adapters (several), not both: "
            f"move {bt.adapter} into bluetooth.adapters and delete bluetooth.adapter",
            file=file, key="bluetooth.adapter"))
        return
    entries = [("bluetooth.adapter", bt.adapter)] if bt.adapter is not None else [
        (f"bluetooth.adapters[{i}]", name) for i, name in enumerate(bt.adapters or ())]
    if bt.adapters is not None and not bt.adapters:
        report(ConfigError("an empty list uses no adapter: list at least one (hci0), or "
                           "leave bluetooth.adapters out to use every adapter BlueZ has",
                           file=file, key="bluetooth.adapters"))
    seen: set[str] = set()
    for key, name in entries:
        if not _ADAPTER.fullmatch(name):
            report(ConfigError(
                f"{name!r} is not an adapter name like hci0 or an adapter MAC address like "
                "00:1A:7D:DA:71:13, in quotes (`bluetoothctl list` shows yours)", file=file,
                key=key))
        elif name.upper() in seen:
            report(ConfigError(f"{name} is listed twice; list each adapter once",
                               file=file, key=key))
        seen.add(name.upper())


def with_storage_path(config: Config, file: str | None,
                       report: Callable[[ConfigError], None]) -> Config:
    """storage.path with ``~`` expanded; it must be absolute (the daemon's working folder
    is not a place for its state: under systemd it is /)."""
    raw = config.storage.path
    path = os.path.expanduser(raw.strip())
    if not path or not os.path.isabs(path):
        report(ConfigError(
            f"{raw!r} is not an absolute path: give the folder for the daemon's state in "
            "full, e.g. /var/lib/battery-hawk (systemd) or ~/battery-hawk (as yourself)",
            file=file, key="storage.path"))
        return config
    return dataclasses.replace(config, storage=dataclasses.replace(config.storage, path=path))


def check_storage(config: Config, file: str | None = None) -> None:
    """ConfigError unless the daemon can write storage.path (or create it: a missing folder
    is made by the daemon, or by systemd's StateDirectory=). Touches nothing."""
    path = Path(config.storage.path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        why = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        why = f"{existing} is not writable for this user"
    else:
        return
    raise ConfigError(
        f"the daemon cannot write {path} ({why}); it keeps its seq counters and undelivered "
        f"messages there. Make it the daemon's (sudo install -d -o battery-hawk -g "
        f"battery-hawk {path}) or point storage.path at a writable folder",
        file=file, key="storage.path")


def _expand(path: str, env: Mapping[str, str], file: str | None, key: str) -> str:
    """``$VAR`` / ``${VAR}`` in a path replaced from the environment (``$$`` is a ``$``)."""
    try:
        return string.Template(path).substitute(env)
    except KeyError as exc:
        name = exc.args[0]
        hint = (" (systemd sets it only for a unit with LoadCredential=)"
                if name == CREDENTIALS_ENV else "")
        raise ConfigError(f"${name} is not set{hint}; set it or give a plain path",
                          file=file, key=key) from None
    except ValueError:
        return path  # a lone "$" that is no variable: take the path as written


def resolve_password(mqtt: MqttConfig, file: str | None, env: Mapping[str, str]) -> MqttConfig:
    """The broker password: password_file, password, $BATTERY_HAWK_MQTT_PASSWORD, then
    the systemd credential ``mqtt`` ($CREDENTIALS_DIRECTORY/mqtt), first found wins.

    Environment variables in password_file are expanded, so
    ``password_file: ${CREDENTIALS_DIRECTORY}/mqtt`` works under systemd.
    """
    if mqtt.password is not None and mqtt.password_file is not None:
        raise ConfigError("give either password or password_file, not both", file=file,
                          key="mqtt.password_file")
    password = mqtt.password
    password_file = mqtt.password_file
    if password_file is not None:
        password_file = _expand(password_file, env, file, "mqtt.password_file")
        try:
            password = Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {password_file}: {exc.strerror or exc}",
                              file=file, key="mqtt.password_file") from None
    elif password is None:
        password = env.get(PASSWORD_ENV) or None
        credentials = env.get(CREDENTIALS_ENV)
        if password is None and credentials:
            credential = Path(credentials, PASSWORD_CREDENTIAL)
            with contextlib.suppress(OSError):  # no such credential: no password
                password = credential.read_text(encoding="utf-8").strip() or None
    return dataclasses.replace(mqtt, password=password, password_file=password_file)


def expand_tls(tls: TLSConfig, file: str | None, env: Mapping[str, str]) -> TLSConfig:
    """The TLS file paths with environment variables expanded (ConfigError if unset)."""
    paths: dict[str, Any] = {
        name: _expand(value, env, file, f"mqtt.tls.{name}")
        for name in ("ca_cert", "cert_file", "key_file")
        if (value := getattr(tls, name)) is not None
    }
    return dataclasses.replace(tls, **paths)


def check_tls(tls: TLSConfig, file: str | None, report: Callable[[ConfigError], None]) -> None:
    """Client certificate and key go together; with TLS on, every file must be usable."""
    if (tls.cert_file is None) != (tls.key_file is None):
        report(ConfigError("cert_file and key_file go together: give both or neither",
                           file=file, key="mqtt.tls"))
    if not tls.enabled:
        return
    for name in ("ca_cert", "cert_file", "key_file"):
        tls_path = getattr(tls, name)
        if tls_path is None:
            continue
        try:
            with open(tls_path, "rb") as pem:
                pem.read(1)
        except OSError as exc:
            why = exc.strerror or str(exc)
            fix = ("give the daemon's user read access" if isinstance(exc, PermissionError)
                   else "check the path")
            report(ConfigError(f"cannot read {tls_path}: {why}; {fix}", file=file,
                               key=f"mqtt.tls.{name}"))
            continue
        if name == "ca_cert":
            try:
                ssl.create_default_context(cafile=tls_path)
            except (ssl.SSLError, ValueError) as exc:
                report(ConfigError(f"{tls_path} is not a PEM CA certificate ({exc}); give the "
                                   "CA that signed the broker's certificate", file=file,
                                   key="mqtt.tls.ca_cert"))


def check_devices(devices: tuple[DeviceConfig, ...], file: str | None,
                   report: Callable[[ConfigError], None],
                   indices: list[int] | None = None) -> None:
    """The checks that span a device's keys, or several devices; ``indices`` are the
    devices' places in the file (devices that could not be built are not in the tuple)."""
    from battery_hawk.protocols import (  # registry of families
        DRIVERS,
        VICTRON_KEY_HELP,
        unknown_type_message,
    )

    seen: dict[str, int] = {}
    names: dict[str, int] = {}
    places = indices if indices is not None else list(range(len(devices)))
    for index, device in zip(places, devices, strict=True):
        key = f"devices[{index}]"

        def fail(message: str, where: str = "", key: str = key) -> None:
            report(ConfigError(message, file=file, key=f"{key}{where}"))

        driver = DRIVERS.get(device.type)
        if driver is None:
            fail(unknown_type_message(device.type), ".type")
        elif driver.requires_key and device.key is None:
            where = f"; {VICTRON_KEY_HELP}" if device.type == "victron" else ""
            fail(f"a {device.type} device needs its key (32 hex digits){where}", ".key")
        if driver is not None and device.mode == "passive" and not driver.advert_fields:
            fail(f"{device.type} advertisements carry no reading that battery-hawk can decode; "
                 "use mode: auto or poll", ".mode")
        if driver is not None and device.mode == "poll" and driver.write_uuid is None \
                and driver.read_uuid is None and driver.notify_uuid is None:
            fail(f"{device.type} devices are read from their advertisements only; "
                 "use mode: auto or passive", ".mode")
        if device.address in seen:
            fail(f"address {device.address} is also devices[{seen[device.address]}]'s; "
                 "list each monitor once", ".address")
        elif device.device_id in seen:
            fail(f"id {device.device_id} is also devices[{seen[device.device_id]}]'s; "
                 "give each device its own `id:`", ".id")
        for ident in (device.address, device.device_id):
            seen.setdefault(ident, index)
        if device.name is not None and (not device.name.strip() or any(
                unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in device.name)):
            fail(f"name {device.name!r} is empty or holds a control character (a newline, "
                 "a tab, an escape); Home Assistant and the logs would show it garbled: "
                 "give the name as plain text on one line", ".name")
        name = device.display_name.strip().casefold()
        if name in names:
            fail(f"name {device.display_name!r} is also devices[{names[name]}]'s: Home "
                 "Assistant would show two devices of one name and their entity ids would "
                 "collide; give each device its own name", ".name")
        names.setdefault(name, index)


def check_proxies(proxies: tuple[EsphomeProxyConfig, ...], file: str | None,
                  report: Callable[[ConfigError], None],
                  indices: list[int] | None = None,
                  faulty: Callable[[str], bool] = lambda _key: False) -> None:
    """Each proxy's key, and no proxy listed twice. faulty(key): the loader already
    refused that key (a bad port stands at its default then, which proves no duplicate)."""
    seen: dict[str, int] = {}
    places = indices if indices is not None else list(range(len(proxies)))
    for index, proxy in zip(places, proxies, strict=True):
        key = f"bluetooth.esphome_proxies[{index}]"

        def fail(message: str, where: str, key: str = key) -> None:
            report(ConfigError(message, file=file, key=f"{key}.{where}"))

        if proxy.encryption_key is not None:
            problem = proxy_key_problem(proxy.encryption_key)
            if problem:
                fail(f"{problem}; copy the key from the proxy's YAML (`api: encryption: "
                     "key:`), 44 characters of base64", "encryption_key")
            if proxy.password is not None:
                fail("give either encryption_key or password: an encrypted proxy ignores "
                     "the legacy API password; remove password", "password")
        if faulty(f"{key}.host") or faulty(f"{key}.port"):
            continue
        where = f"{proxy.host.lower().rstrip('.')}:{proxy.port}"  # names ignore case
        if where in seen:
            fail(f"{proxy.label} is also bluetooth.esphome_proxies[{seen[where]}]; "
                 "list each proxy once", "host")
        seen.setdefault(where, index)


def proxy_key_problem(key: str) -> str | None:
    """What is wrong with an ESPHome API encryption key, or None: it must be the base64 of
    32 bytes (ESPHome docs, Native API Component, ``encryption: key``)."""
    try:
        raw = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        return "encryption_key is not base64"
    if len(raw) != 32:
        return f"encryption_key decodes to {len(raw)} bytes, not 32"
    return None

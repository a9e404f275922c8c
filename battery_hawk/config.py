"""The YAML configuration, loaded once into frozen dataclasses.

Every fault raises ConfigError naming the file, the key path (``mqtt.port``) and what was
wrong. Unknown keys are faults too: a typo must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from battery_hawk.config_checks import (
    CREDENTIALS_ENV,
    PASSWORD_CREDENTIAL,
    PASSWORD_ENV,
    check_adapters,
    check_devices,
    check_proxies,
    check_storage,
    check_tls,
    expand_tls,
    proxy_key_problem,
    resolve_password,
    with_storage_path,
)
from battery_hawk.config_loader import Invalid, Loader, UniqueKeyLoader, yaml_hint
from battery_hawk.errors import ConfigError
from battery_hawk.insight.profile import NOMINAL_VOLTAGES, BatteryProfile, Chemistry

__all__ = [
    "CREDENTIALS_ENV",
    "ESPHOME_API_PORT",
    "MQTT_TLS_PORT",
    "PASSWORD_CREDENTIAL",
    "PASSWORD_ENV",
    "AdapterRecoveryConfig",
    "AlertConfig",
    "BluetoothConfig",
    "Config",
    "DeviceConfig",
    "EsphomeProxyConfig",
    "HttpConfig",
    "HysteresisConfig",
    "LoggingConfig",
    "MqttConfig",
    "SiteConfig",
    "StorageConfig",
    "TLSConfig",
    "check_storage",
    "load_config",
    "parse_config",
    "proxy_key_problem",
]

MQTT_TLS_PORT = 8883  # IANA's port for MQTT over TLS; the default once tls.enabled is on
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_CHEMISTRIES = tuple(str(c) for c in Chemistry)


def _bounds(lo: float | None = None, hi: float | None = None, *, above: bool = False) -> Any:
    """Field metadata: the inclusive range (or strictly above ``lo``) a number must be in."""
    return {"lo": lo, "hi": hi, "above": above}


def _choice(*options: str) -> Any:
    return {"choices": options}


@dataclass(frozen=True, slots=True)
class AdapterRecoveryConfig:
    """When the daemon power-cycles a stuck adapter (battery_hawk/ble/recovery.py)."""

    enabled: bool = True
    # consecutive "in progress" / "not ready" failures before a power cycle
    stuck_after: int = field(default=3, metadata=_bounds(1, 100))
    # seconds of discovery without a single advertisement before a power cycle
    silence: float = field(default=300.0, metadata=_bounds(10, 86400))


ESPHOME_API_PORT = 6053  # the native API's default port (ESPHome docs, "Native API Component")


@dataclass(frozen=True, slots=True)
class EsphomeProxyConfig:
    """One ESPHome Bluetooth proxy reached over ESPHome's native API (battery_hawk/esphome/).

    encryption_key: the base64 32-byte Noise PSK of the proxy's ``api: encryption: key:``;
    password: the legacy ``api: password:`` of proxies without encryption.
    """

    host: str
    port: int = field(default=ESPHOME_API_PORT, metadata=_bounds(1, 65535))
    encryption_key: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """host:port, the name the proxy goes by in logs, metrics and /api/devices."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BluetoothConfig:
    # adapters: names (hci1) or MAC addresses; None (absent): every adapter BlueZ has.
    # adapter: the older key for exactly one adapter; give one key or the other.
    adapters: tuple[str, ...] | None = None
    adapter: str | None = None
    scan_interval: float = field(default=30.0, metadata=_bounds(0, above=True))
    connect_timeout: float = field(default=20.0, metadata=_bounds(0, above=True))
    max_concurrent_connections: int = field(default=1, metadata=_bounds(1, 10))
    recovery: AdapterRecoveryConfig = field(default_factory=AdapterRecoveryConfig)
    esphome_proxies: tuple[EsphomeProxyConfig, ...] = ()

    @property
    def selected_adapters(self) -> tuple[str, ...] | None:
        """The adapters asked for (names or MACs, as written), or None for every one."""
        if self.adapter is not None:
            return (self.adapter,)
        return self.adapters




@dataclass(frozen=True, slots=True)
class TLSConfig:
    enabled: bool = False
    ca_cert: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class MqttConfig:
    enabled: bool = True
    broker: str = "localhost"
    port: int = field(default=1883, metadata=_bounds(1, 65535))
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    tls: TLSConfig = field(default_factory=TLSConfig)
    topic_prefix: str = "battery_hawk"
    discovery_prefix: str = "homeassistant"
    qos: int = field(default=1, metadata=_bounds(0, 2))
    keepalive: int = field(default=60, metadata=_bounds(5, 3600))
    max_retries: int = field(default=10, metadata=_bounds(0))
    initial_retry_delay: float = field(default=1.0, metadata=_bounds(0, above=True))
    max_retry_delay: float = field(default=300.0, metadata=_bounds(0, above=True))
    backoff_multiplier: float = field(default=2.0, metadata=_bounds(1))
    jitter_factor: float = field(default=0.1, metadata=_bounds(0, 1))
    connection_timeout: float = field(default=30.0, metadata=_bounds(0, above=True))
    health_check_interval: float = field(default=60.0, metadata=_bounds(0, above=True))
    message_queue_size: int = field(default=1000, metadata=_bounds(1, 100_000))
    message_retry_limit: int = field(default=3, metadata=_bounds(0))


PROFILE_DEFAULT: float = math.nan
"""Default of an alert setting that follows the device's battery profile (never in YAML)."""


def _from_profile(value: float | None) -> bool:
    return value is not None and math.isnan(value)


@dataclass(frozen=True, slots=True)
class HysteresisConfig:
    """How far a value must come back past its threshold before an alert clears."""

    voltage: float = field(default=PROFILE_DEFAULT, metadata=_bounds(0))  # V
    soc: float = field(default=2.0, metadata=_bounds(0, 100))  # percentage points
    temperature: float = field(default=2.0, metadata=_bounds(0, 50))  # °C


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Alert thresholds; null switches an alert off.

    low_voltage, high_temperature, low_temperature and the voltage hysteresis follow the
    device's battery profile unless given (see DeviceConfig.effective_alerts).
    """

    low_voltage: float | None = field(default=PROFILE_DEFAULT, metadata=_bounds(0))
    low_soc: float | None = field(default=20.0, metadata=_bounds(0, 100))
    high_temperature: float | None = field(default=PROFILE_DEFAULT,
                                           metadata=_bounds(-40, 150))
    low_temperature: float | None = field(default=PROFILE_DEFAULT,
                                          metadata=_bounds(-40, 50))
    stale: bool = True
    poor_connection: bool = True
    high_error_rate: float | None = field(default=50.0, metadata=_bounds(0, 100))
    hysteresis: HysteresisConfig = field(default_factory=HysteresisConfig)
    hold: float = field(default=60.0, metadata=_bounds(0, 86400))


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    address: str
    type: str
    name: str | None = None
    id: str | None = None
    poll_interval: float = field(default=60.0, metadata=_bounds(1))
    key: bytes | None = field(default=None, repr=False)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    chemistry: str = field(default="lead_acid", metadata=_choice(*_CHEMISTRIES))
    nominal_voltage: int = field(default=12, metadata={"one_of": NOMINAL_VOLTAGES})
    estimate_soc: bool = True
    # passive: advertisements only, never a connection; poll: a connection every
    # poll_interval; auto: advertisements when they carry a reading, a connection for
    # what they do not (see DeviceCoordinator).
    mode: str = field(default="auto", metadata=_choice("auto", "passive", "poll"))
    # BM2 / BM6 / BM7: fill gaps in the live readings from the monitor's own memory
    history: bool = True

    @property
    def profile(self) -> BatteryProfile:
        """The battery's chemistry and nominal voltage."""
        return BatteryProfile(Chemistry(self.chemistry), self.nominal_voltage)

    @property
    def effective_alerts(self) -> AlertConfig:
        """The alert settings with every profile default filled in."""
        a = self.alerts
        profile = self.profile
        return dataclasses.replace(
            a,
            low_voltage=profile.low_voltage if _from_profile(a.low_voltage) else a.low_voltage,
            high_temperature=profile.high_temperature if _from_profile(a.high_temperature)
            else a.high_temperature,
            low_temperature=profile.charge_min_temperature
            if _from_profile(a.low_temperature) else a.low_temperature,
            hysteresis=dataclasses.replace(
                a.hysteresis, voltage=profile.voltage_band
                if _from_profile(a.hysteresis.voltage) else a.hysteresis.voltage),
        )

    @property
    def device_id(self) -> str:
        """The id used in topics: the configured id, or the MAC in lower case without colons."""
        return self.id or self.address.replace(":", "").lower()

    @property
    def display_name(self) -> str:
        return self.name or f"{self.type.upper()} {self.address[-5:]}"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = field(default=9105, metadata=_bounds(0, 65535))
    # bearer token for admin calls (POST .../reset-breaker) from other hosts; loopback
    # clients need none
    admin_token: str | None = field(default=None, repr=False)
    # /health answers 503 once MQTT has not been connected for this many seconds
    health_mqtt_grace: float = field(default=120.0, metadata=_bounds(0))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = field(default="INFO", metadata=_choice(*_LOG_LEVELS))
    format: str = field(default="text", metadata=_choice("text", "json"))


@dataclass(frozen=True, slots=True)
class StorageConfig:
    path: str = "/var/lib/battery-hawk"
    spool: bool = True  # keep undelivered MQTT messages on disk (spool.sqlite under path)
    max_spool_mb: float = field(default=64.0, metadata=_bounds(0, above=True))


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """Several gateways on one broker: each device is read by the one that hears it best."""

    enabled: bool = False
    # seconds a device's owner holds it without renewing; a dead owner is replaced
    # within two of these
    lease_seconds: float = field(default=30.0, metadata=_bounds(1, 3600))
    # how much better (dB) another gateway must hear a device to take it over
    handover_db: float = field(default=10.0, metadata=_bounds(0, 100))


@dataclass(frozen=True, slots=True)
class Config:
    gateway_id: str = field(default_factory=lambda: _sanitise_id(socket.gethostname()))
    bluetooth: BluetoothConfig = field(default_factory=BluetoothConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    devices: tuple[DeviceConfig, ...] = ()
    http: HttpConfig = field(default_factory=HttpConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    site: SiteConfig = field(default_factory=SiteConfig)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in the config (password, admin token, device keys in hex)."""
        found = [self.mqtt.password, self.http.admin_token]
        for proxy in self.bluetooth.esphome_proxies:
            found += [proxy.encryption_key, proxy.password]
        for device in self.devices:
            if device.key is not None:
                found += [device.key.hex(), device.key.hex().upper()]
        return tuple(s for s in found if s)

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data with every secret replaced by ***."""
        data = dataclasses.asdict(self)
        if data["mqtt"]["password"] is not None:
            data["mqtt"]["password"] = "***"
        if data["http"]["admin_token"] is not None:
            data["http"]["admin_token"] = "***"
        for proxy in data["bluetooth"]["esphome_proxies"]:
            for secret in ("encryption_key", "password"):
                if proxy[secret] is not None:
                    proxy[secret] = "***"
        for device, typed in zip(data["devices"], self.devices, strict=True):
            device["alerts"] = dataclasses.asdict(typed.effective_alerts)
            if device["key"] is not None:
                device["key"] = "***"
        return data


def _sanitise_id(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw).strip("-") or "battery-hawk"


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a YAML config file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}): "
                          "save the file as UTF-8", file=name) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"invalid YAML{where}: {problem}{yaml_hint(problem)}", file=name
        ) from None
    return parse_config(data if data is not None else {}, file=name, environ=environ)


def parse_config(
    data: object, *, file: str | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data; every fault found is reported at once.

    Raises ConfigError; with several faults its ``problems`` holds one ConfigError each.
    """
    env = os.environ if environ is None else environ
    problems: list[ConfigError] = []
    if data is None or data == {}:
        raise ConfigError("the file is empty: the daemon would do nothing. List your monitors "
                          "under `devices:` (config/battery-hawk.yaml shows every key; "
                          "`battery-hawk scan` finds them)", file=file)
    loader = _ConfigLoader(file, problems)
    try:
        config: Config = loader.build(Config, data, "")
    except Invalid:
        raise ConfigError.collect(problems, file) from None

    def report(problem: ConfigError) -> None:
        """Record a problem, unless its key already has one (e.g. a bad key is not missing)."""
        if all(problem.key != known.key for known in problems):
            problems.append(problem)

    config = with_storage_path(config, file, report)
    mqtt = config.mqtt
    if isinstance(data, dict) and mqtt.tls.enabled and "port" not in (data.get("mqtt") or {}):
        mqtt = dataclasses.replace(mqtt, port=MQTT_TLS_PORT)  # MQTT over TLS's own port
    try:
        mqtt = resolve_password(mqtt, file, env)
    except ConfigError as exc:
        report(exc)
    try:
        mqtt = dataclasses.replace(mqtt, tls=expand_tls(mqtt.tls, file, env))
    except ConfigError as exc:
        report(exc)
    else:
        check_tls(mqtt.tls, file, report)
    if mqtt.max_retry_delay < mqtt.initial_retry_delay:
        report(ConfigError("must not be smaller than mqtt.initial_retry_delay", file=file,
                           key="mqtt.max_retry_delay"))
    listed = data.get("devices") if isinstance(data, dict) else None
    if not config.devices and not listed:
        report(ConfigError("no devices configured: the daemon would do nothing. Add one entry "
                           "per monitor (`battery-hawk scan` finds them; "
                           "config/battery-hawk.yaml shows the keys)", file=file, key="devices"))
    check_devices(config.devices, file, report, loader.kept.get("devices"))
    check_proxies(config.bluetooth.esphome_proxies, file, report,
                  loader.kept.get("bluetooth.esphome_proxies"),
                  faulty=lambda key: any(p.key == key for p in problems))
    check_adapters(config.bluetooth, file, report)
    if config.site.enabled and not config.mqtt.enabled:
        report(ConfigError("the gateways of a site agree through the MQTT broker; set "
                           "mqtt.enabled: true or site.enabled: false", file=file,
                           key="site.enabled"))
    if problems:
        raise ConfigError.collect(problems, file)
    return dataclasses.replace(config, mqtt=mqtt)


class _ConfigLoader(Loader):
    """The loader with battery-hawk's own help added to its errors."""

    def check_text(self, leaf: str, text: str, path: str) -> str:
        """A device's type must be a known family, said even when another field of the
        same device is wrong too (the device then cannot be built for the later checks)."""
        if leaf == "type" and path.startswith("devices["):
            from battery_hawk.protocols import DRIVERS, unknown_type_message

            if text not in DRIVERS:
                self.fail(path, unknown_type_message(text))
        return text

    def _with_key_help(
        self, cls: type[Any], data: Mapping[Any, Any], key: str, exc: ConfigError
    ) -> ConfigError:
        """A Victron key error also says where VictronConnect shows the key; a list under
        bluetooth.adapter points to bluetooth.adapters."""
        if cls is BluetoothConfig and key == "adapter" and isinstance(data.get(key), list):
            return ConfigError(f"{exc.reason}: for several adapters write "
                               "bluetooth.adapters (with an s)", file=exc.file, key=exc.key)
        if cls is DeviceConfig and key == "key" and str(data.get("type", "")).lower() == "victron":
            from battery_hawk.protocols import VICTRON_KEY_HELP

            return ConfigError(f"{exc.reason}; {VICTRON_KEY_HELP}", file=exc.file, key=exc.key)
        return exc

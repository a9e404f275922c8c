"""Builds the daemon from a Config and owns its tasks (battery_hawk.daemon runs it).

Readings flow coordinator -> App (the sink) -> the reading pipeline (battery_hawk.pipeline;
``_build_pipeline`` is the one place that orders its stages) -> MQTTInterface and metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from battery_hawk.ble.link import Transport
from battery_hawk.ble.radios import RadioSet
from battery_hawk.config import Config, DeviceConfig
from battery_hawk.coordinator import DeviceCoordinator, offline_after
from battery_hawk.daemon_status import DaemonStatus
from battery_hawk.deadletters import register_routes as register_dead_letter_routes
from battery_hawk.errors import BatteryHawkError
from battery_hawk.history.gapfill import GapFiller, GapLedger, GapWatch
from battery_hawk.http import HttpServer, Metrics
from battery_hawk.insight import AlertThresholds
from battery_hawk.insight.device import InsightSettings
from battery_hawk.logs import bind
from battery_hawk.models import Advertisement, DeviceInfo, DeviceReading
from battery_hawk.mqtt import ConnectionState, MQTTInterface
from battery_hawk.pipeline import (
    AlertEvents,
    AlertStage,
    AlertState,
    DiscoveryStage,
    InsightStage,
    MetricsStage,
    Pipeline,
    ProcessedReading,
    PublishStage,
    ReadingsOutput,
    StateDocument,
    StateOutput,
)
from battery_hawk.protocols import get_driver
from battery_hawk.protocols.history import HISTORY_FAMILIES, HistoryRecord
from battery_hawk.publisher import (
    PAYLOAD_OFFLINE,
    PAYLOAD_ONLINE,
    Topics,
    gateway_discovery_messages,
    removal_messages,
)
from battery_hawk.retained import RetainedTopics
from battery_hawk.runtime import GatewayStats, build_mqtt
from battery_hawk.site import Ownership, SiteService, SiteTopics
from battery_hawk.site.holder import LEAGEND_FAMILIES, HolderBoard, holder_attributes
from battery_hawk.site.ownership import GRACE
from battery_hawk.storage import Announcements, SeqStore
from battery_hawk.systemd import Notifier

if TYPE_CHECKING:
    from battery_hawk.esphome import EsphomeTransport

__all__ = ["App"]

_log = logging.getLogger(__name__)

STOP_GRACE = 15.0  # seconds in-flight reads may take to finish on shutdown
FLUSH_TIMEOUT = 10.0  # seconds the MQTT queue may take to drain on shutdown
MQTT_CLOSE_TIMEOUT = 10.0  # seconds for `offline` and the goodbye after the flush
# STOP_GRACE + FLUSH_TIMEOUT + MQTT_CLOSE_TIMEOUT stays under the unit's TimeoutStopSec.


class App:
    """The running daemon: coordinators, scanner, publisher, MQTT, HTTP and housekeeping."""

    def __init__(
        self,
        config: Config,
        *,
        transport: Transport | None = None,
        notifier: Notifier | None = None,
        stats_interval: float = 60.0,
        availability_interval: float = 5.0,
        birth_debounce: float = 5.0,
    ) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_prefix, config.gateway_id,
                             config.mqtt.discovery_prefix)
        self._transport = transport
        self.proxies: list[EsphomeTransport] = []  # ESPHome proxies among the radios
        self.radios: RadioSet | None = None  # the local adapters (unless a transport is given)
        self._local: Any = None  # ble.local.LocalAdapters: bleak is imported only when used
        self._notifier = notifier or Notifier()
        self._stats_interval = stats_interval
        self._availability_interval = availability_interval
        self.started_at = time.monotonic()
        self._started = False
        self.last_items: dict[str, ProcessedReading] = {}  # for /api/devices and the page
        storage = Path(config.storage.path)
        self._seq = SeqStore(storage)
        self._announced = Announcements(storage)
        self.gaps = GapLedger(storage)
        self.mqtt: MQTTInterface | None = build_mqtt(config) if config.mqtt.enabled else None
        self.retained = RetainedTopics(self._publish_retained, debounce=birth_debounce,
                                       drained=self._mqtt_drained)
        self.coordinators: dict[str, DeviceCoordinator] = {}
        self._passive: dict[str, DeviceCoordinator] = {}  # by address, fed by the scanner
        self._by_address: dict[str, str] = {}  # address (upper case) -> device id
        self._device_tasks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._stats = GatewayStats()
        self.http: HttpServer | None = None
        self.metrics = Metrics()
        if self.mqtt is not None:
            mqtt = self.mqtt
            self.metrics.bind_mqtt(lambda: mqtt.stats.as_dict())
        self.metrics.bind_unknown_codes(lambda: {
            did: codes for did, c in self.coordinators.items()
            if (codes := getattr(c.driver, "unknown_codes", None))})
        self.site = self._build_site()
        self.holders = HolderBoard()  # who holds a Leagend monitor we cannot connect to
        self.status = DaemonStatus(self)  # what /health and /api/devices show
        self._build_pipeline()

    def _build_site(self) -> SiteService | None:
        """Several gateways on one broker (site.enabled): who reads which device."""
        site, mqtt = self.config.site, self.mqtt
        if not site.enabled or mqtt is None:
            return None
        ownership = Ownership(self.config.gateway_id, site.lease_seconds,
                              [d.device_id for d in self.config.devices],
                              handover_db=site.handover_db)
        return SiteService(
            ownership, SiteTopics(self.config.mqtt.topic_prefix), mqtt,
            is_connected=lambda: mqtt.connection_state is ConnectionState.CONNECTED,
            on_change=self._on_ownership)

    def _build_pipeline(self) -> None:
        """The reading pipeline; the only place that knows the order of its stages."""
        self.discovery = DiscoveryStage(self.topics, self._announced, self._publish_msg,
                                        self._expire_after,
                                        gateway_availability=self.site is None,
                                        attributes=lambda d: d.family in LEAGEND_FAMILIES)
        document = StateDocument()  # state and readings carry the same bytes
        self.publishing = PublishStage(self._publish_msg, [
            StateOutput(self.topics, document),
            ReadingsOutput(self.topics, document),
            AlertEvents(self.topics),
            AlertState(self.topics),
        ])
        self.insight = InsightStage(self._insight_settings_for)
        self.alerting = AlertStage(self._thresholds_for, self._announced)
        self.pipeline = Pipeline([
            self.insight,
            self.alerting,
            self.discovery,
            self.publishing,
            GapWatch(self.gaps, self._gap_after),
            MetricsStage(self.metrics, self._stats),
        ])
        self.gap_filler = GapFiller(
            self.gaps, self._publish_history, self.topics.device_readings, stop=self._stop,
            timeout=self.config.bluetooth.connect_timeout, on_published=self._history_published,
        )

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """What the coordinators read through: the given transport, else a RadioSet of
        the local adapters (filled by start())."""
        if self._transport is None:
            self.radios = RadioSet()
            self._transport = self.radios
            if self.config.bluetooth.esphome_proxies:
                self._add_proxies(self.radios)
        return self._transport

    def _add_proxies(self, radios: RadioSet) -> None:
        """Every configured ESPHome proxy joins the RadioSet beside the local adapters."""
        from battery_hawk.esphome.radios import add_proxies

        bt = self.config.bluetooth
        self.proxies = add_proxies(radios, bt.esphome_proxies,
                                   connect_timeout=bt.connect_timeout)

    def _adapter_transport(self, adapter: str) -> Transport:
        """The BleakTransport of one local adapter (hciN or its MAC)."""
        from battery_hawk.ble import BleakTransport
        from battery_hawk.ble.recovery import RecoverySettings

        bt = self.config.bluetooth
        metrics = self.metrics
        return BleakTransport(
            adapter=adapter, connect_timeout=bt.connect_timeout,
            max_concurrent_connections=bt.max_concurrent_connections,
            recovery=RecoverySettings(enabled=bt.recovery.enabled,
                                      stuck_after=bt.recovery.stuck_after,
                                      silence=bt.recovery.silence),
            on_recovery=lambda event: metrics.observe_adapter_recovery(
                event.adapter, event.reason, event.method, event.ok),
        )

    async def _start_radios(self) -> None:
        """The local adapters join the RadioSet; BlueZ's changes are followed from now."""
        self.transport  # noqa: B018 - makes the RadioSet unless a transport was given
        if self.radios is None or self._local is not None:
            return
        from battery_hawk.ble.local import LocalAdapters

        bt = self.config.bluetooth
        self._local = LocalAdapters(self.radios, bt.selected_adapters,
                                    self._adapter_transport, bt.max_concurrent_connections)
        await self._local.start()

    async def start(self) -> None:
        """Start every part; returns once the tasks run (the broker may still be away)."""
        bind(gateway_id=self.config.gateway_id)
        await self._start_http()
        for proxy in self.transport_proxies():
            await proxy.start()  # sessions come up in the background meanwhile
        if self.mqtt is not None:
            if self.site is not None:  # before the first session, so none is missed
                await self.site.start()
                self.mqtt.add_connected_hook(self.site.session_started)
            await self.mqtt.start()
            await self.mqtt.subscribe(self.topics.ha_status, self._on_ha_status)
            self.mqtt.add_connected_hook(self.retained.session_started)  # a broker may forget
            stats_expire = max(180, int(3 * self._stats_interval))
            for topic, payload in gateway_discovery_messages(self.topics, stats_expire):
                await self._publish(topic, payload, retain=True)
        if self.site is not None:
            self._spawn(self.site.run(), "site")
            # which devices other gateways serve is known once their reports came in
            self._spawn(self._remove_stale_later(GRACE * self.site.lease), "site-removal")
        else:
            await self._remove_stale_devices({d.device_id for d in self.config.devices})
        await self._start_radios()
        # the first visits find a proxy that answers at once connected (bounded: a proxy
        # that is away holds start-up at most its api timeout, all proxies together)
        await asyncio.gather(*(p.wait_tried(p.api_timeout) for p in self.proxies))
        count = len(self.config.devices)
        for index, device in enumerate(self.config.devices):
            self._add_device(device, stagger=index / count)
            if device.device_id in self._announced and self.site is None:  # earlier run
                await self.discovery.announce(self.coordinators[device.device_id].info)
        self._spawn(self._scan_loop(), "scanner")
        self._spawn(self._availability_loop(), "availability")
        self._spawn(self._stats_loop(), "gateway-stats")
        if self._notifier.watchdog_interval:
            self._spawn(self._watchdog_loop(self._notifier.watchdog_interval), "watchdog")
        self._notifier.ready()
        self._started = True
        _log.info("battery-hawk started: %d device(s), gateway %s",
                  len(self.config.devices), self.config.gateway_id)

    async def stop(self) -> None:
        """Stop scanning, let in-flight reads finish (bounded), flush MQTT, say offline."""
        self._notifier.stopping()
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        device_tasks = list(self._device_tasks.values())
        if device_tasks:
            _, pending = await asyncio.wait(device_tasks, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, *device_tasks, return_exceptions=True)
        self._tasks.clear()
        self._device_tasks.clear()
        if self._local is not None:
            await self._local.stop()
            self._local = None
        if self.site is not None:
            await self.site.stop()  # release our leases: others take over at once
        for proxy in self.proxies:
            await proxy.close()
        self._seq.close()
        self._announced.flush()
        self.gaps.close()
        await self.retained.close()
        if self.mqtt is not None:
            try:  # flush, then offline; bounded even if the broker link is a black hole
                async with asyncio.timeout(FLUSH_TIMEOUT + MQTT_CLOSE_TIMEOUT):
                    await self.mqtt.disconnect(FLUSH_TIMEOUT)
            except TimeoutError:
                _log.warning("MQTT did not close in time; the broker will publish our Will")
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self._started:  # a start that failed (e.g. a busy HTTP port) never "started"
            _log.info("battery-hawk stopped")
        self._started = False

    def transport_proxies(self) -> list[EsphomeTransport]:
        """The ESPHome proxies among the radios (builds the transport if needed)."""
        if self.config.bluetooth.esphome_proxies:
            _ = self.transport
        return self.proxies

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"battery-hawk:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Log a loop that died of a bug (the watchdog then stops pinging)."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            _log.error("task %s died: %r", task.get_name(), exc, exc_info=exc)

    # ---- devices -----------------------------------------------------------------

    def _add_device(self, device: DeviceConfig, stagger: float = 0.0) -> None:
        """Start a device; its first visit waits ``stagger`` (0..1) of its interval."""
        driver = get_driver(device.type)(device.key)
        site = self.site
        coordinator = DeviceCoordinator(
            device, driver, self.transport, self, self._seq,
            connect_timeout=self.config.bluetooth.connect_timeout,
            may_read=None if site is None else lambda: site.owns(device.device_id),
        )
        if self._gap_after(device.device_id, coordinator) is not None:
            coordinator.after_reading = self._fill_gaps
            coordinator.wants_visit = lambda c: self.gap_filler.due(c.info.device_id)
        self.coordinators[device.device_id] = coordinator
        self.holders.add(device.device_id, coordinator.info.name, coordinator.info.family)
        self.insight.start(device.device_id, time.time())
        if coordinator.listens:
            self._passive[device.address] = coordinator
        self._by_address[device.address.upper()] = device.device_id
        self.metrics.add_device(coordinator.info)
        if not coordinator.passive:
            first_delay = min(device.poll_interval, 10.0) * stagger
            task = asyncio.create_task(coordinator.run(self._stop, first_delay),
                                       name=f"battery-hawk:device:{device.device_id}")
            task.add_done_callback(self._task_done)
            self._device_tasks[device.device_id] = task

    async def _stop_device(self, device_id: str) -> None:
        """Stop a device's loop; its HA entities stay (reload removes those of gone ones)."""
        task = self._device_tasks.pop(device_id, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # a task that had died is already logged
        coordinator = self.coordinators.pop(device_id, None)
        if coordinator is not None:
            self._passive.pop(coordinator.config.address, None)
            self._by_address.pop(coordinator.config.address.upper(), None)
        self.pipeline.forget(device_id)
        self.holders.forget(device_id)
        self.last_items.pop(device_id, None)
        self.metrics.remove_device(device_id)

    async def _remove_stale_devices(self, keep: set[str]) -> None:
        """Delete the HA entities of devices no longer configured (empty retained docs)."""
        if self.mqtt is None:
            return  # keep the record: the entities go once MQTT is enabled again
        for device_id, known in self._announced.items():
            if device_id in keep:
                continue
            if self.site is not None and self.site.ownership.served_elsewhere(
                    device_id, time.monotonic()):
                _log.info("device %s left the configuration; another gateway serves it, "
                          "so its entities stay", device_id)
                self._announced.forget(device_id)
                continue
            _log.info("device %s left the configuration: removing its entities", device_id)
            for topic, payload in removal_messages(device_id, known.fields, known.alerts,
                                                   self.topics):
                await self._publish(topic, payload, retain=True)
            self._announced.forget(device_id)

    async def withdraw_gateway(self) -> None:
        """Empty the gateway's retained discovery documents: Home Assistant deletes it."""
        for topic, _ in gateway_discovery_messages(self.topics):
            await self._publish(topic, b"", retain=True)

    async def reload(self, config: Config) -> None:
        """Apply a new device list (SIGHUP); other sections need a restart."""
        ignored = [f.name for f in dataclasses.fields(config)
                   if f.name != "devices" and getattr(config, f.name) != getattr(self.config,
                                                                                 f.name)]
        if ignored:
            _log.warning("SIGHUP applies the device list only; restart for changes to: %s",
                         ", ".join(ignored))
            config = dataclasses.replace(self.config, devices=config.devices)
        old = {d.device_id: d for d in self.config.devices}
        new = {d.device_id: d for d in config.devices}
        for device_id, device in old.items():
            if new.get(device_id) != device:
                await self._stop_device(device_id)
        self.config = config
        if self.site is not None:
            self.site.ownership.set_devices(new)
        for device_id, device in new.items():
            if old.get(device_id) != device:
                self._add_device(device)
        await self._remove_stale_devices(set(new))
        _log.info("configuration reloaded: %d device(s)", len(new))

    # ---- ReadingSink ---------------------------------------------------------------

    async def on_reading(self, reading: DeviceReading) -> None:
        if reading.duration is not None:  # read over a connection: nobody else holds it
            self.holders.read_ok(reading.device.device_id, time.monotonic())
        if self.site is not None:
            self.site.heard(reading.device.device_id, None)  # a read counts as heard
            reading = dataclasses.replace(reading, gateway=self.config.gateway_id)
        self.last_items[reading.device.device_id] = await self.pipeline.process(reading)

    async def _on_ownership(self, device_id: str, owned: bool) -> None:
        """Several gateways: this one reads a device now, or no longer."""
        coordinator = self.coordinators.get(device_id)
        if owned:
            if coordinator is not None:
                coordinator.take_over()
                # the time since our own last reading was another gateway's to cover: it
                # is no gap to fill from the device's memory
                self.gaps.forget(device_id)
                if device_id in self._announced:  # via_device: us, from now on
                    await self.discovery.announce(coordinator.info)
            return
        # the new owner says the device's retained truth; we must not repeat ours
        device_prefix = self.topics.device_state(device_id).rsplit("/", 1)[0] + "/"
        node = f"/{self.topics.device_identifier(device_id)}/"
        self.retained.forget_where(lambda t: t.startswith(device_prefix) or node in t)

    async def _publish_holders(self) -> None:
        """A Leagend monitor someone else may hold: its ``held_elsewhere`` attribute."""
        site = self.site
        for did, suspect in self.holders.changes(
                time.monotonic(), lambda d: site is None or site.owns(d)):
            await self._publish(self.topics.device_attributes(did),
                                holder_attributes(suspect), retain=True)

    async def _remove_stale_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._remove_stale_devices({d.device_id for d in self.config.devices})

    async def on_availability(self, device: DeviceInfo, online: bool) -> None:
        payload = PAYLOAD_ONLINE if online else PAYLOAD_OFFLINE
        await self._publish(self.topics.device_availability(device.device_id), payload,
                            retain=True)
        self.metrics.set_online(device, online)

    def on_error(self, device: DeviceInfo, kind: str) -> None:
        self.insight.failure(device.device_id, time.time())
        if kind == "decode":
            self.metrics.observe_decode_error(device)
        else:
            self.metrics.observe_transport_error(device)
            if kind == "transport":  # a radio away or full says nothing of who holds it
                self.holders.connect_failed(device.device_id, time.monotonic())

    def _gap_after(
        self, device_id: str, coordinator: DeviceCoordinator | None = None
    ) -> timedelta | None:
        """Silence that counts as a gap to fill from history; None: no gap fill."""
        coordinator = coordinator or self.coordinators.get(device_id)
        if coordinator is None:
            return None
        device = coordinator.config
        if (not device.history or device.mode == "passive"
                or coordinator.driver.family not in HISTORY_FAMILIES):
            return None
        return timedelta(seconds=offline_after(device.poll_interval))

    async def _fill_gaps(self, coordinator: DeviceCoordinator) -> None:
        await self.gap_filler.visit(self.transport, coordinator.config.address,
                                    coordinator.driver, coordinator.info)

    async def _publish_history(self, topic: str, payload: bytes) -> None:
        await self._publish(topic, payload, retain=False)

    def _history_published(self, device: DeviceInfo, records: Sequence[HistoryRecord]) -> None:
        self.metrics.observe_history(device, len(records))
        # the status page's sparkline and the trend: no hole where the gap was
        self.insight.backfill(device.device_id, ((r.timestamp, r.voltage) for r in records))

    def _expire_after(self, device_id: str) -> int:
        coordinator = self.coordinators.get(device_id)
        return int(offline_after(coordinator.config.poll_interval if coordinator else 60.0))

    def _thresholds_for(self, device_id: str) -> AlertThresholds | None:
        coordinator = self.coordinators.get(device_id)
        if coordinator is None:
            return None
        device = coordinator.config
        a = device.effective_alerts
        return AlertThresholds(
            a.low_voltage, a.low_soc, a.high_temperature,
            voltage_band=a.hysteresis.voltage, soc_band=a.hysteresis.soc,
            temperature_band=a.hysteresis.temperature, hold=a.hold,
            low_temperature=a.low_temperature,
            stale=offline_after(device.poll_interval) if a.stale else None,
            poor_connection=a.poor_connection, high_error_rate=a.high_error_rate,
        )

    def _insight_settings_for(self, device_id: str) -> InsightSettings | None:
        coordinator = self.coordinators.get(device_id)
        if coordinator is None:
            return None
        device = coordinator.config
        return InsightSettings(device.profile, device.poll_interval,
                               device.effective_alerts.low_voltage, device.estimate_soc)

    async def _on_ha_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            self.retained.birth()  # debounced: a flood of births costs one or two rounds

    async def _publish(self, topic: str, payload: object, *, retain: bool = False) -> None:
        if self.mqtt is not None:
            if retain:
                self.retained.record(topic, payload)
            await self.mqtt.publish(topic, payload, qos=self.config.mqtt.qos, retain=retain)

    async def _mqtt_drained(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.flush(FLUSH_TIMEOUT)

    async def _publish_retained(self, topic: str, payload: bytes) -> None:
        if self.mqtt is not None:
            await self.mqtt.publish(topic, payload, qos=self.config.mqtt.qos, retain=True)

    async def _publish_msg(self, topic: str, payload: object, retain: bool) -> None:
        await self._publish(topic, payload, retain=retain)

    # ---- housekeeping loops -----------------------------------------------------------

    async def _scan_loop(self) -> None:
        """Feed advertisements to passive devices; restart the scanner if it fails.

        A scanner that has heard nothing for a while is restarted too: after bluetoothd
        restarts, discovery can stop without an error.
        """
        interval = self.config.bluetooth.scan_interval
        silence = max(60.0, 3 * interval)
        failing = False
        while True:
            # several radios: which one hears a device best comes from the adverts
            several = self.radios is not None and len(self.radios.names) > 1
            if not self._passive and self.site is None and not several:
                await asyncio.sleep(interval)
                continue
            stream = self.transport.advertisements()
            try:
                while True:
                    async with asyncio.timeout(silence):
                        adv = await anext(stream)
                    if failing:
                        failing = False
                        _log.info("scanning works again")
                    heard = self._by_address.get(adv.address.upper())
                    self.holders.advert(heard, time.monotonic())
                    if self.site is not None and heard is not None:
                        self.site.heard(heard, self._best_rssi(adv))
                    coordinator = self._passive.get(adv.address)
                    if coordinator is not None:
                        await coordinator.feed(adv)
            except TimeoutError:
                _log.debug("no advertisement for %.0f s: restarting discovery", silence)
                continue
            except StopAsyncIteration:
                pass
            except Exception as exc:
                if not failing:
                    failing = True
                    _log.warning("scanning failed: %s; retrying every %.0f s", exc, interval,
                                 exc_info=None if isinstance(exc, BatteryHawkError) else exc)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            await asyncio.sleep(interval)

    def _best_rssi(self, adv: Advertisement) -> int | None:
        """The strongest RSSI any of our radios hears the device at (several adapters:
        the advert handed on may be a weaker one's)."""
        heard = self.radios.hearing(adv.address) if self.radios is not None else {}
        return max(heard.values(), default=adv.rssi)

    async def _availability_loop(self) -> None:
        while True:
            await asyncio.sleep(self._availability_interval)
            self._seq.flush_if_due()  # a quiet device must not keep its seq only in memory
            self._announced.flush_if_due()  # nor its entities and active alerts
            for coordinator in list(self.coordinators.values()):
                await coordinator.check_availability()
            await self._publish_holders()
            self.status.mqtt_down_for()  # notes when MQTT was last up, for /health
            await self._check_alerts_between_readings()

    async def _check_alerts_between_readings(self) -> None:
        """Stale, poor_connection and high_error_rate change without a reading too."""
        now = datetime.now(UTC)
        for did, coordinator in list(self.coordinators.items()):
            if self.site is not None and not self.site.owns(did):
                continue  # its owner watches it
            changes = self.alerting.check(did, coordinator.info.name, now,
                                          coordinator.silent_for(),
                                          self.insight.link(did, now.timestamp()))
            if changes:
                status = self.alerting.status(did)
                self.metrics.set_alerts(did, {str(k): s.active for k, s in status.items()})
                await self.publishing.publish_alerts(did, status, changes, now)

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self._stats_interval)
            mqtt_stats = self.mqtt.stats.as_dict() if self.mqtt is not None else {}
            doc = self._stats.snapshot(mqtt_stats, self.coordinators.values(), self.started_at)
            await self._publish(self.topics.gateway_stats, doc)

    def loop_states(self) -> dict[str, bool]:
        """Each device loop and housekeeping task by name: True while it runs."""
        return {t.get_name().removeprefix("battery-hawk:"): not t.done()
                for t in (*self._tasks, *self._device_tasks.values())}

    def loops_alive(self) -> bool:
        """True while every device loop and housekeeping task is running."""
        return all(self.loop_states().values()) and (self.mqtt is None or self.mqtt.alive)

    async def _watchdog_loop(self, interval: float) -> None:
        while True:
            if self.loops_alive():
                self._notifier.watchdog()
            await asyncio.sleep(interval / 3)

    async def _start_http(self) -> None:
        http = self.config.http
        if not http.enabled:
            return
        server = HttpServer(http.listen, http.port, self.metrics, self.status,
                            admin_token=http.admin_token)
        server.add_route("GET", "/api/radios", self.status.radios)
        self.metrics.bind_proxies(self.status.proxy_figures)
        server.add_route("POST", "/api/devices/{device_id}/reset-breaker",
                         self.status.reset_breaker,
                         admin=True)
        register_dead_letter_routes(server, self.mqtt)
        try:
            await server.start()
        except OSError as exc:
            raise BatteryHawkError(
                f"cannot serve HTTP on {http.listen}:{http.port} ({exc.strerror or exc}); "
                "change http.port or set http.enabled: false") from None
        self.http = server

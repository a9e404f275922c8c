"""What the HTTP server asks of the running daemon: /health, /api/devices, /api/radios,
admin actions."""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from battery_hawk import __version__
from battery_hawk.coordinator import offline_after
from battery_hawk.http import DeviceStatus as HttpDeviceStatus
from battery_hawk.http import HealthSnapshot, RadioStatus, radios_document
from battery_hawk.http.routes import Request, Response, json_response

if TYPE_CHECKING:
    from battery_hawk.app import App

__all__ = ["DaemonStatus"]


class DaemonStatus:
    """The HTTP server's StatusProvider: a read-only view of an App, plus reset-breaker."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._mqtt_seen_up = app.started_at  # last time MQTT was seen connected

    def reset_breaker(self, request: Request) -> Response:
        """POST /api/devices/{device_id}/reset-breaker: close the device's circuit breaker."""
        device_id = request.params["device_id"]
        coordinator = self._app.coordinators.get(device_id)
        if coordinator is None:
            return json_response({"error": f"no device {device_id}"}, HTTPStatus.NOT_FOUND)
        coordinator.reset_breaker()
        return json_response({"device_id": device_id, "breaker": coordinator.breaker_state})

    def mqtt_down_for(self) -> float | None:
        """Seconds MQTT has not been connected (None while it is, or when it is disabled)."""
        mqtt = self._app.mqtt
        if mqtt is None:
            return None
        now = time.monotonic()
        if mqtt.connection_state.name == "CONNECTED":
            self._mqtt_seen_up = now
            return None
        return now - self._mqtt_seen_up

    def health(self) -> HealthSnapshot:
        app = self._app
        mqtt = app.mqtt
        loops = app.loop_states()
        if mqtt is not None:
            loops["mqtt"] = mqtt.alive
        return HealthSnapshot(
            mqtt_state=mqtt.connection_state.name.lower() if mqtt else "disabled",
            uptime_s=time.monotonic() - app.started_at,
            loops=loops,
            mqtt_queue_size=mqtt.stats.queue_size if mqtt else None,
            version=__version__,
            mqtt_down_s=self.mqtt_down_for(),
            mqtt_grace_s=app.config.http.health_mqtt_grace,
            proxies={p.proxy.label: p.available for p in app.proxies},
        )

    def proxy_figures(self) -> list[tuple[str, bool, int, int]]:
        """Per ESPHome proxy: host:port, connected, free slots, slot limit (for /metrics)."""
        return [(s.label, s.connected, s.slots_free, s.slots_limit)
                for s in (p.status() for p in self._app.proxies)]

    def radios(self, _request: Request) -> Response:
        """GET /api/radios: every radio, and of each ESPHome proxy its state."""
        app = self._app
        proxies = {p.name: p.status() for p in app.proxies}
        found = []
        for name in app.radios.names if app.radios is not None else ():
            failing = app.radios.failing(name) if app.radios is not None else None
            proxy = proxies.get(name)
            if proxy is None:
                found.append(RadioStatus(name, "adapter", connected=failing is None,
                                         failing=failing))
                continue
            found.append(RadioStatus(
                name, "esphome", connected=proxy.connected, failing=failing,
                proxy=proxy.label, proxy_name=proxy.name,
                esphome_version=proxy.esphome_version, slots_free=proxy.slots_free,
                slots_limit=proxy.slots_limit, last_error=proxy.last_error,
                sessions=proxy.sessions))
        return json_response(radios_document(found))

    def devices(self) -> list[HttpDeviceStatus]:
        app = self._app
        result = []
        now = time.time()
        for did, coordinator in app.coordinators.items():
            status = coordinator.status
            last = status.last_reading
            link = app.insight.link(did, now)
            item = app.last_items.get(did)
            insight = item.insight if item is not None else None
            alerts = app.alerting.status(did)
            result.append(HttpDeviceStatus(
                info=coordinator.info, online=bool(status.online),
                last_seen=last.timestamp if last else None, latest=last,
                readings=status.readings, decode_errors=status.decode_errors,
                transport_errors=status.transport_errors, last_error=status.last_error,
                stale=coordinator.silent_for() >= offline_after(coordinator.config.poll_interval),
                breaker=coordinator.breaker_state,
                success_rate=link.success_rate if link else None,
                latency_p50=link.latency_p50 if link else None,
                latency_p95=link.latency_p95 if link else None,
                quality=str(link.quality) if link and link.quality is not None else None,
                trend=str(insight.trend) if insight and insight.trend else None,
                voltage_slope=insight.voltage_slope if insight else None,
                time_to_low_mins=None if insight is None or insight.time_to_low_h is None
                else round(insight.time_to_low_h * 60),
                soc_estimated=insight.soc_estimated if insight else None,
                alerts=tuple(str(k) for k, s in alerts.items() if s.active),
                history=tuple(app.insight.voltage_history(did)),
                held_elsewhere=held.message if (held := app.holders.suspect(did)) else None,
            ))
        return result

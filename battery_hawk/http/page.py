"""The status page at `/`: one self-contained HTML document, no scripts, no external assets."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from battery_hawk.http.status import DeviceStatus, HealthSnapshot, overall
from battery_hawk.publisher import format_timestamp

__all__ = ["render_page"]

REFRESH_S = 10

# (Reading field, column heading, unit, decimals)
_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("voltage", "Voltage", "V", 2),
    ("soc", "SoC", "%", 0),
    ("temperature", "Temp", "°C", 1),
    ("current", "Current", "A", 2),
    ("power", "Power", "W", 1),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .3rem}
.meta{color:#555;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd;text-align:left}
th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{padding:.1rem .45rem;border-radius:.3rem;color:#fff;font-size:.85rem}
.ok,.online{background:#2e7d32}.degraded{background:#ef6c00}
.failing,.offline{background:#c62828}
.muted{color:#888}
"""


def _fmt(value: float | None, unit: str, decimals: int) -> str:
    if value is None:
        return '<span class="muted">&ndash;</span>'
    return f"{value:.{decimals}f}&nbsp;{escape(unit)}"


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (
        f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}"
        if days
        else (f"{hours:02d}:{minutes:02d}:{secs:02d}")
    )


def _row(d: DeviceStatus) -> str:
    avail = "online" if d.online else "offline"
    cells = [
        f"<td>{escape(d.info.name)}<br><small class='muted'>{escape(d.info.address)}</small></td>",
        f"<td>{escape(d.info.model)}</td>",
        f'<td><span class="badge {avail}">{avail}</span></td>',
    ]
    reading = d.latest.reading if d.latest else None
    for field, _, unit, decimals in _COLUMNS:
        value = getattr(reading, field) if reading else None
        cells.append(f'<td class="num">{_fmt(value, unit, decimals)}</td>')
    state = reading.state if reading and reading.state is not None else None
    cells.append(f"<td>{escape(str(state)) if state else '&ndash;'}</td>")
    rssi = d.latest.rssi if d.latest else None
    cells.append(f'<td class="num">{_fmt(rssi, "dBm", 0)}</td>')
    seen = format_timestamp(d.last_seen) if d.last_seen else "never"
    cells.append(f"<td><small>{escape(seen)}</small></td>")
    errors = d.decode_errors + d.transport_errors
    title = f' title="{escape(d.last_error, quote=True)}"' if d.last_error else ""
    cells.append(f'<td class="num"{title}>{errors}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def render_page(health: HealthSnapshot, devices: Sequence[DeviceStatus]) -> bytes:
    """The whole page, UTF-8; it reloads itself every REFRESH_S seconds."""
    verdict = str(overall(health, devices))
    heads = ["Device", "Model", "Status", *(c[1] for c in _COLUMNS), "State", "RSSI",
             "Last seen (UTC)", "Errors"]  # fmt: skip
    rows = "".join(_row(d) for d in devices) or (
        f'<tr><td colspan="{len(heads)}" class="muted">No devices configured.</td></tr>'
    )
    queue = "" if health.mqtt_queue_size is None else f", queue {health.mqtt_queue_size}"
    version = f" {escape(health.version)}" if health.version else ""
    online = sum(1 for d in devices if d.online)
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>battery-hawk: {verdict}</title><style>{_STYLE}</style></head>
<body><h1>battery-hawk{version} <span class="badge {verdict}">{verdict}</span></h1>
<div class="meta">MQTT {escape(health.mqtt_state)}{queue} · devices {online}/{len(devices)} online
 · up {_uptime(health.uptime_s)} ·
<a href="/api/devices">/api/devices</a> · <a href="/health">/health</a> ·
<a href="/metrics">/metrics</a></div>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>
<tbody>{rows}</tbody></table></body></html>
"""
    return html.encode()

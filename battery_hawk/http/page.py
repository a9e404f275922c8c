"""The status page at `/`: one self-contained HTML document, no scripts, no external assets.

What a person looks for first: are any alerts raised (listed on top, and in the title),
is every device reading (relative ages such as "12 s ago"), and how each battery is doing
(a voltage sparkline of the last hour as inline SVG, the trend, the link quality).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from battery_hawk.http.status import DeviceStatus, HealthSnapshot, checks, overall
from battery_hawk.publisher import ALERT_NAMES, format_timestamp

__all__ = ["relative_age", "render_page", "sparkline"]

REFRESH_S = 10

# (Reading field, column heading, unit, decimals)
_COLUMNS: tuple[tuple[str, str, str, int], ...] = (
    ("soc", "SoC", "%", 0),
    ("temperature", "Temp", "°C", 1),
    ("current", "Current", "A", 2),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.3rem;margin:0 0 .3rem}
h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.meta{color:#555;margin-bottom:1rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{background:#eee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{padding:.1rem .45rem;border-radius:.3rem;color:#fff;font-size:.85rem;white-space:nowrap}
.ok,.online,.EXCELLENT,.GOOD{background:#2e7d32}.degraded,.POOR,.alerting{background:#ef6c00}
.failing,.offline,.CRITICAL,.alert{background:#c62828}
.muted{color:#888}
ul.alerts{margin:0;padding:0;list-style:none}
ul.alerts li{background:#fdecea;border-left:4px solid #c62828;padding:.35rem .6rem;margin:.2rem 0}
.none{color:#2e7d32}
svg.spark{vertical-align:middle}
svg.spark polyline{fill:none;stroke:#1565c0;stroke-width:1.5}
"""


def relative_age(then: datetime | None, now: datetime) -> str:
    """``12 s ago``, ``3 min ago``, ``2 h ago``, ``4 d ago``; ``never`` for None."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def sparkline(points: Sequence[tuple[float, float]], *, width: int = 120,
              height: int = 28) -> str:
    """An inline SVG line of (time, value) points, scaled to fit; '' for fewer than two."""
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    span_t = (t1 - t0) or 1.0
    span_v = (hi - lo) or 1.0
    pad = 2.0
    coords = " ".join(
        f"{pad + (t - t0) / span_t * (width - 2 * pad):.1f},"
        f"{height - pad - (v - lo) / span_v * (height - 2 * pad):.1f}"
        for t, v in points
    )
    label = f"Voltage, last hour: {lo:.2f} to {hi:.2f} V"
    return (f'<svg class="spark" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}">'
            f"<title>{label}</title><polyline points=\"{coords}\"/></svg>")


def _fmt(value: float | None, unit: str, decimals: int) -> str:
    if value is None:
        return '<span class="muted">&ndash;</span>'
    return f"{value:.{decimals}f}&nbsp;{escape(unit)}"


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _alert_name(kind: str) -> str:
    return ALERT_NAMES.get(kind, kind.replace("_", " "))


def _trend(d: DeviceStatus) -> str:
    if d.trend is None:
        return '<span class="muted">&ndash;</span>'
    text = escape(d.trend)
    if d.voltage_slope is not None:
        text += f" <small>{d.voltage_slope:+.2f}&nbsp;V/h</small>"
    if d.time_to_low_mins is not None:
        hours = d.time_to_low_mins / 60
        text += f"<br><small>low in {hours:.1f}&nbsp;h</small>"
    return text


def _row(d: DeviceStatus, now: datetime) -> str:
    avail = "online" if d.online else "offline"
    reading = d.latest.reading if d.latest else None
    volts = reading.voltage if reading else None
    cells = [
        f"<td>{escape(d.info.name)}<br><small class='muted'>{escape(d.info.model)} · "
        f"{escape(d.info.address)}</small></td>",
        f'<td><span class="badge {avail}">{avail}</span></td>',
        f'<td class="num">{_fmt(volts, "V", 2)}</td>',
        f"<td>{sparkline(d.history) or '<span class=muted>&ndash;</span>'}</td>",
    ]
    for field, _, unit, decimals in _COLUMNS:
        value = getattr(reading, field) if reading else None
        if field == "soc" and value is None and d.soc_estimated is not None:
            cells.append(f'<td class="num" title="estimated from the resting voltage">'
                         f"~{_fmt(d.soc_estimated, unit, decimals)}</td>")
            continue
        cells.append(f'<td class="num">{_fmt(value, unit, decimals)}</td>')
    cells.append(f"<td>{_trend(d)}</td>")
    quality = (f'<span class="badge {escape(d.quality)}">{escape(d.quality)}</span>'
               if d.quality else '<span class="muted">&ndash;</span>')
    if d.success_rate is not None:
        quality += f" <small>{d.success_rate * 100:.0f}&nbsp;% ok</small>"
    if d.latest is not None and d.latest.radio:  # several radios: which one read it
        quality += f"<br><small class='muted'>via {escape(d.latest.radio)}</small>"
    cells.append(f"<td>{quality}</td>")
    alerts = " ".join(f'<span class="badge alert">{escape(_alert_name(k))}</span>'
                      for k in d.alerts) or '<span class="muted">none</span>'
    cells.append(f"<td>{alerts}</td>")
    seen = format_timestamp(d.last_seen) if d.last_seen else ""
    cells.append(f'<td title="{escape(seen)}">{relative_age(d.last_seen, now)}</td>')
    errors = d.decode_errors + d.transport_errors
    title = f' title="{escape(d.last_error, quote=True)}"' if d.last_error else ""
    cells.append(f'<td class="num"{title}>{errors}</td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _alert_list(devices: Sequence[DeviceStatus]) -> str:
    items = [f"<li><strong>{escape(d.info.name)}</strong>: {escape(_alert_name(kind))}</li>"
             for d in devices for kind in d.alerts]
    if not items:
        return '<p class="none">No active alerts.</p>'
    return '<ul class="alerts">' + "".join(items) + "</ul>"


def render_page(health: HealthSnapshot, devices: Sequence[DeviceStatus],
                now: datetime | None = None) -> bytes:
    """The whole page, UTF-8; it reloads itself every REFRESH_S seconds."""
    now = now or datetime.now(UTC)
    verdict = str(overall(health, devices))
    failing = [name for name, check in checks(health, devices).items() if not check["ok"]]
    active = sum(len(d.alerts) for d in devices)
    heads = ["Device", "Status", "Voltage", "Last hour", *(c[1] for c in _COLUMNS), "Trend",
             "Link", "Alerts", "Last reading", "Errors"]
    rows = "".join(_row(d, now) for d in devices) or (
        f'<tr><td colspan="{len(heads)}" class="muted">No devices configured.</td></tr>'
    )
    queue = "" if health.mqtt_queue_size is None else f", queue {health.mqtt_queue_size}"
    version = f" {escape(health.version)}" if health.version else ""
    online = sum(1 for d in devices if d.online)
    headline = f"{active} alert{'s' if active != 1 else ''}" if active else verdict
    alert_badge = (f' <span class="badge alerting">{headline}</span>' if active else "")
    problems = (f" · failing checks: {escape(', '.join(failing))}" if failing else "")
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>battery-hawk: {headline}</title><style>{_STYLE}</style></head>
<body><h1>battery-hawk{version} <span class="badge {verdict}">{verdict}</span>{alert_badge}</h1>
<div class="meta">MQTT {escape(health.mqtt_state)}{queue} · devices {online}/{len(devices)} online
 · up {_uptime(health.uptime_s)}{problems} ·
<a href="/api/devices">/api/devices</a> · <a href="/health">/health</a> ·
<a href="/metrics">/metrics</a></div>
<h2>Active alerts</h2>
{_alert_list(devices)}
<h2>Devices</h2>
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in heads)}</tr></thead>
<tbody>{rows}</tbody></table></body></html>
"""
    return html.encode()

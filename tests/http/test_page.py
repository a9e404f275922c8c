"""The status page: alerts on top, relative ages, sparklines, trend and link quality.

One test renders it in headless Chromium (Debian ``chromium``, installed by
``scripts/bootstrap --system``) and checks what a person looks at.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.http import HttpServer, Metrics
from battery_hawk.http.page import relative_age, render_page, sparkline
from tests.http.conftest import FakeProvider

NOW = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run")


def test_relative_age_reads_like_a_person_says_it() -> None:
    assert relative_age(NOW - timedelta(seconds=12), NOW) == "12 s ago"
    assert relative_age(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert relative_age(NOW - timedelta(hours=3), NOW) == "3 h ago"
    assert relative_age(NOW - timedelta(days=3), NOW) == "3 d ago"
    assert relative_age(None, NOW) == "never"


def test_sparkline_spans_the_box_from_first_to_last_point() -> None:
    svg = sparkline([(0.0, 12.0), (1800.0, 12.5), (3600.0, 12.2)], width=100, height=20)
    points = re.search(r'points="([^"]+)"', svg)
    assert points is not None
    xy = [tuple(map(float, p.split(","))) for p in points.group(1).split()]
    assert xy[0] == (2.0, 18.0) and xy[1] == (50.0, 2.0) and xy[2][0] == 98.0
    assert "12.00 to 12.50 V" in svg
    assert sparkline([(0.0, 12.0)]) == ""


def alerting_provider(now: datetime) -> FakeProvider:
    provider = FakeProvider()
    car, van = provider.statuses
    history = tuple((now.timestamp() - 3600 + 60 * i, 12.6 - 0.004 * i) for i in range(60))
    provider.statuses[0] = replace(
        car, last_seen=now - timedelta(seconds=12), alerts=("low_voltage",), history=history,
        quality="GOOD", success_rate=0.95, trend="discharging", voltage_slope=-0.24,
        time_to_low_mins=150)
    provider.statuses[1] = replace(van, online=False, quality="CRITICAL",
                                   alerts=("stale", "poor_connection"))
    return provider


def test_page_lists_active_alerts_first_and_does_not_say_all_is_well() -> None:
    provider = alerting_provider(NOW)
    page = render_page(provider.health(), provider.statuses, NOW).decode()
    assert "<title>battery-hawk: 3 alerts</title>" in page
    alerts = page[page.index("Active alerts"):page.index("<h2>Devices")]
    assert "Car battery</strong>: Low voltage" in alerts
    assert "No recent reading" in alerts and "Poor connection" in alerts
    assert "12 s ago" in page and "never" in page
    assert page.count("<polyline") == 1
    assert "discharging" in page and "low in 2.5" in page
    assert "via " not in page  # one radio: nothing to say which
    quiet = FakeProvider()
    calm = render_page(quiet.health(), quiet.statuses, NOW).decode()
    assert "No active alerts." in calm and "<title>battery-hawk: ok</title>" in calm


def test_page_says_which_radio_read_each_device() -> None:
    provider = alerting_provider(NOW)
    car = provider.statuses[0]
    assert car.latest is not None
    provider.statuses[0] = replace(car, latest=replace(car.latest, radio="esphome:10.0.0.5:6053"))
    page = render_page(provider.health(), provider.statuses, NOW).decode()
    assert "via esphome:10.0.0.5:6053" in page


async def _chromium(*args: str, timeout: float = 60.0) -> bytes:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is missing: run scripts/bootstrap --system"
    proc = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out


async def test_page_in_headless_chromium_shows_alerts_ages_and_sparklines(
    tmp_path: Path,
) -> None:
    provider = alerting_provider(datetime.now(UTC))
    async with HttpServer("127.0.0.1", 0, Metrics(process=False), provider) as server:
        url = f"http://127.0.0.1:{server.port}/"
        dom = (await _chromium(f"--user-data-dir={tmp_path / 'profile-dom'}",
                               "--dump-dom", url)).decode()
        shot = tmp_path / "status.png"
        await _chromium(f"--user-data-dir={tmp_path / 'profile-shot'}",
                        "--window-size=1400,600", f"--screenshot={shot}", url)
    # what the browser built, not what we sent: the DOM after parsing
    assert "<title>battery-hawk: 3 alerts</title>" in dom
    assert re.search(r"Car battery</strong>: Low voltage", dom)
    assert re.search(r">\d+ s ago<", dom)  # rendered a few seconds after last_seen
    assert re.search(r'<svg class="spark"[^>]*>.*?<polyline points="[^"]+"', dom)
    assert "GOOD" in dom and "CRITICAL" in dom and "discharging" in dom
    assert "http://" not in dom.replace(url, "")  # nothing loaded from elsewhere
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1400, 600)
    assert len(png) > 20_000  # a rendered page, not a blank one

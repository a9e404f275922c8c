"""The demo's live view as a user sees it: an 80x24 terminal (tmux), Ctrl-C to leave."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from battery_hawk.demo import FLAT_PROFILE, FLAT_START_SOC
from battery_hawk.simulator.battery import BatteryModel
from tests.support.brokers import free_port

ROOT = Path(__file__).parents[2]
WIDTH, HEIGHT = 80, 24


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True,
                          timeout=10).stdout


def _wait_for_screen(session: str, ready: Callable[[str], bool], timeout: float = 30.0,
                     history: bool = False) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = _tmux("capture-pane", "-p", "-t", session, *(["-S", "-"] if history else []))
        if ready(screen) or time.monotonic() > deadline:
            return screen
        time.sleep(0.2)


def test_live_view_fits_80x24_and_ctrl_c_leaves_nothing_behind() -> None:
    port = free_port()
    session = f"bh-demo-{port}"
    command = (f"cd {ROOT} && {sys.executable} -m battery_hawk demo --port {port}; "
               "echo DEMO-EXIT $?; sleep 60")
    _tmux("new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", str(HEIGHT),
          "bash", "-c", command)
    try:
        # every device online and the SmartSolar's solar power in
        screen = _wait_for_screen(session, lambda s: s.count(" online") == 6 and "W sun" in s)
        lines = screen.splitlines()
        assert len(lines) <= HEIGHT
        assert all(len(line) < WIDTH for line in lines), f"a line reaches the edge:\n{screen}"
        assert f"mosquitto_sub -h 127.0.0.1 -p {port} -v -t 'battery_hawk/#'" in screen
        assert f"127.0.0.1:{port}" in lines[0]
        rows = {line.split("  ")[0]: line for line in lines}
        for name in ("Camper 1 (flat)", "BM300 Pro 2", "Battery Monitor 3", "SmartShunt 4",
                     "Sim Battery 5", "SmartSolar 6"):
            assert name in rows, name
        assert "V" in rows["Battery Monitor 3"] and "%" in rows["Sim Battery 5"]
        assert "W sun" in rows["SmartSolar 6"] and "A" in rows["SmartShunt 4"]
        _tmux("send-keys", "-t", session, "C-c")
        after = _wait_for_screen(session, lambda s: "DEMO-EXIT" in s, history=True)
        assert "DEMO-EXIT 0" in after
        assert "DEVICE" not in after  # the alternate screen left nothing in the scrollback
        for noise in ("reconnecting", "connection lost", "Traceback", "WARNING", "ERROR"):
            assert noise not in after
        assert "demo ended:" in after
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True,
                       check=False, timeout=10)


def test_flat_battery_crosses_the_low_soc_alert_and_comes_back_in_minutes() -> None:
    import random

    battery = BatteryModel(FLAT_PROFILE, random.Random(0), start=1000.0, soc=FLAT_START_SOC,
                           discharging_first=True)
    socs = [(t, battery.step(1000.0 + t).soc or 0.0) for t in range(0, 10 * 60, 2)]
    below = next(t for t, soc in socs if soc <= 20.0)  # the demo's low_soc threshold
    back = next(t for t, soc in socs if t > below and soc >= 22.0)  # threshold + band
    assert 60 <= below <= 4 * 60
    assert back <= 9 * 60


def test_intro_says_how_the_demo_ends() -> None:
    from battery_hawk.demo import DemoOptions, demo_config, intro
    from battery_hawk.simulator.devices import SimTransport

    config = demo_config(SimTransport([]), port=1883, interval=5, storage="/tmp",
                         http_port=9105)
    assert intro(config, DemoOptions())[-1] == "  Ctrl-C ends the demo."
    assert intro(config, DemoOptions(duration=20))[-1] == (
        "  the demo ends after 20 s; Ctrl-C ends it sooner.")

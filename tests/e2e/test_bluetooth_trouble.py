"""`battery-hawk run` without working Bluetooth logs what is wrong and what to do, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.test_daemon_run import write_config
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, free_port

BM6 = "C8:47:80:00:00:26"


async def run_until_logged(config: Path, env: dict[str, str], wanted: str) -> str:
    """Start the daemon, wait (bounded) for a log line containing wanted, SIGTERM it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "battery_hawk", "run", "-c", str(config), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any(wanted in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "daemon exited: " + "".join(lines)[-3000:]
                lines.append(line)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    return "".join(lines) + (rest or b"").decode()


@pytest.mark.parametrize("fault", ["no-dbus", "no-bluez", "rfkill"])
async def test_daemon_says_what_is_wrong_with_bluetooth(
    tmp_path: Path, fake_bluez: FakeBlueZ, mosquitto: Mosquitto, fault: str
) -> None:
    config = write_config(tmp_path, mosquitto.port, free_port(),
                          [{"address": BM6, "type": "bm6", "name": "Car", "poll_interval": 1}])
    env = fake_bluez.env(dict(os.environ))
    if fault == "no-dbus":
        env["DBUS_SYSTEM_BUS_ADDRESS"] = f"unix:path={tmp_path}/nothing_here"
        wanted = "systemctl status dbus"
    elif fault == "no-bluez":
        fake_bluez.stop_bluez()
        wanted = "is bluetooth.service running? `systemctl status bluetooth`"
    else:
        fake_bluez.set_adapter_power(False, rfkill=True)
        wanted = "rfkill unblock bluetooth"

    log = await run_until_logged(config, env, wanted)

    assert "Traceback" not in log
    assert "[Errno" not in log and "ServiceUnknown" not in log
    said = [json.loads(line)["message"] for line in log.splitlines() if wanted in line]
    assert said, log[-3000:]
    assert len(said) == len(set(said)), said  # each part says it once, not once a retry

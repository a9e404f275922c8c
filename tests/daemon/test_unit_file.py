"""The systemd unit: keys that stop a crash loop, and systemd's own verdict on the file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).parents[2] / "systemd" / "battery-hawk.service"


def _parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_bad_config_exit_status_is_not_restarted() -> None:
    service = _parse(UNIT.read_text())["Service"]
    assert service["Restart"] == ["on-failure"]
    assert "2" in service["RestartPreventExitStatus"][0].split()


def test_crash_loop_trips_the_start_limit() -> None:
    unit = _parse(UNIT.read_text())
    interval = float(unit["Unit"]["StartLimitIntervalSec"][0])
    burst = int(unit["Unit"]["StartLimitBurst"][0])
    restart_sec = float(unit["Service"]["RestartSec"][0])
    # a daemon that dies at once is restarted every RestartSec: the limit must be reached
    # within the interval, or the loop never stops
    assert burst * restart_sec < interval


def test_unit_runs_the_installed_command_as_its_own_user() -> None:
    service = _parse(UNIT.read_text())["Service"]
    assert service["ExecStart"][0].startswith("/usr/local/bin/battery-hawk run ")
    assert service["Type"] == ["notify"] and service["User"] == ["battery-hawk"]
    assert service["StateDirectory"] == ["battery-hawk"]


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: run " \
        "scripts/bootstrap --system (Debian package systemd)"
    # verify checks that ExecStart exists: point it at this environment's command
    command = Path(sys.executable).with_name("battery-hawk")
    text = UNIT.read_text().replace("/usr/local/bin/battery-hawk", str(command))
    unit = tmp_path / "battery-hawk.service"
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if str(unit) in line or "Unknown" in line]
    assert result.returncode == 0 and complaints == [], result.stdout + result.stderr

"""The command line: exit codes and what check-config prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from battery_hawk.cli import main

EXAMPLE = Path(__file__).parents[1] / "config" / "battery-hawk.yaml"


def test_check_config_prints_effective_config_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(EXAMPLE.read_text().replace("password: null", "password: hunter2"))
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "gateway_id:" in out and "***" in out
    assert "hunter2" not in out and "0df4d0395b7d" not in out


def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  port: 99999\n")
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "mqtt.port" in err and str(path) in err


def test_unknown_device_type_exits_2_listing_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("devices:\n  - {address: 'AA:BB:CC:DD:EE:01', type: bm99}\n")
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "devices[0].type" in err and "bm6" in err and "victron" in err


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["scan", "--log-level", "bogus"],
    ["demo", "--port", "70000"],
    ["demo", "--interval", "-1"],
    ["demo", "--devices", "0"],
    ["read", "AA:BB:CC:DD:EE:01", "--type", "victron"],  # Victron needs its key
    ["read", "AA:BB:CC:DD:EE:01", "--type", "bm6", "--key", "00"],
    ["read", "AA:BB:CC:DD:EE:01", "--type", "bm99"],
])
def test_bad_usage_exits_2(argv: list[str]) -> None:
    assert main(argv) == 2


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "battery_hawk", "--version"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "battery-hawk" in result.stdout

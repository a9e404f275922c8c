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


def _with_stdout_closed(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run the command with a stdout whose reader is gone (``| head -0``): code, stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "battery_hawk", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    try:
        err = proc.stderr.read()
        return proc.wait(timeout=timeout), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_output_into_a_pipe_that_closes_early_ends_quietly(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"storage: {{path: '{tmp_path}'}}\n"
                    "devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6}]\n")
    code, err = _with_stdout_closed(["check-config", "-c", str(path)])
    assert code == 141, err  # 128 + SIGPIPE, what `yes | head -1` gives
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert "Exception ignored" not in err


def test_a_broken_pipe_of_another_kind_is_not_taken_for_closed_stdout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import battery_hawk.cli as cli

    def broken_socket(_args: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")  # as a socket's send would

    monkeypatch.setattr(cli, "_dispatch", broken_socket)
    monkeypatch.setattr(cli, "_stdout_gone", lambda: False)
    with pytest.raises(BrokenPipeError):
        main(["check-config", "-c", str(tmp_path / "c.yaml")])


@pytest.mark.parametrize(("argv", "words"), [
    (["--type", "victron"], "victron monitors keep no history"),  # not "needs a key"
    (["--type", "victron", "--key", "00112233445566778899aabbccddeeff"],
     "victron monitors keep no history"),
    (["--type", "bas"], "bas monitors keep no history"),
    (["--type", "bm6", "--since", "6x"], "--since: '6x' is not a span like 90m"),
    (["--type", "bm6", "--since", "0m"], "--since: the span must be above zero"),
])
def test_history_usage_errors_are_said_as_usage_errors(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "AA:BB:CC:DD:EE:01", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: battery-hawk history") and words in err
    assert "battery-hawk history: error:" in err
    assert "bad configuration" not in err and "needs a key" not in err

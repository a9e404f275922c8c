"""The command line's help and usage errors, as a new user meets them."""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path

import pytest

from battery_hawk.cli import _parser, main
from battery_hawk.config import parse_config
from battery_hawk.errors import ConfigError
from battery_hawk.mqtt import ConnectionState, MQTTInterface, ReconnectionConfig
from tests.mqtt.conftest import settings_for
from tests.support.brokers import free_port, wait_until


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_has_a_description_and_every_option_its_default(command: str) -> None:
    parser = _commands()[command]
    assert parser.description and len(parser.description) > 30
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        assert action.help, action.option_strings
        assert "default" in action.help or "required" in action.help, action.option_strings


@pytest.mark.parametrize("command", sorted(_commands()))
def test_help_prints_and_exits_0(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: battery-hawk {command}")


def test_log_level_default_names_the_config_only_where_there_is_one() -> None:
    def log_help(command: str) -> str:
        action = next(a for a in _commands()[command]._actions if "--log-level" in a.option_strings)
        return action.help or ""

    assert "config" in log_help("run") and "config" in log_help("check-config")
    for command in ("demo", "scan", "read"):
        assert "(default: INFO)" in log_help(command)


@pytest.mark.parametrize(("argv", "words"), [
    (["read", "AA:BB:CC:DD:EE:01", "--type", "victron"], "needs a key"),
    (["read", "AA:BB:CC:DD:EE:01", "--type", "victron", "--key", "0123"], "32 hex digits"),
    (["read", "AA:BB:CC:DD:EE:01", "--type", "bm99"], "known types"),
])
def test_bad_device_arguments_are_usage_errors(argv: list[str], words: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: battery-hawk read") and words in err
    assert "bad configuration" not in err
    if "victron" in argv:
        assert "VictronConnect" in err


async def test_failed_state_log_line_gives_the_retry_delay_in_seconds(
    caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="battery_hawk.mqtt")
    config = ReconnectionConfig(max_retries=2, initial_retry_delay=0.05, max_retry_delay=0.25,
                                connection_timeout=1, operation_timeout=1)
    iface = MQTTInterface(settings_for(free_port()), config)  # nobody listens there
    async with iface:
        await wait_until(lambda: iface.connection_state is ConnectionState.FAILED)
    (line,) = [r.getMessage() for r in caplog.records if "FAILED" in r.getMessage()]
    assert "still retrying every 0.25 s" in line and "max_retry_delay" not in line


def test_busy_http_port_fails_without_saying_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "bh.yaml"
        config.write_text(f"mqtt: {{enabled: false}}\nhttp: {{port: {port}}}\n"
                          f"storage: {{path: '{tmp_path}'}}\n"
                          "devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6}]\n")
        assert main(["run", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in err and "http.port" in err
    assert "stopped" not in err and "started" not in err


@pytest.mark.parametrize("address", [
    "AA:BB:CC:DD:EE:01", "aa:bb:cc:dd:ee:01", "aa-bb-cc-dd-ee-01", "AA-BB-CC-DD-EE-01",
    "AABBCCDDEE01", "AA:BB:CC:DD:EE", "AA:BB:CC:DD:EE:01:02", "AA.BB.CC.DD.EE.01",
])
def test_the_command_line_takes_the_addresses_the_config_takes_and_no_others(
    address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        parsed_config = parse_config({"devices": [{"address": address, "type": "bm6"}]})
        config_says = None
    except ConfigError as exc:
        config_says = exc.reason
    for command in ("read", "history"):
        if config_says is None:
            parsed = _parser().parse_args([command, address, "--type", "bm6"])
            assert parsed.address == parsed_config.devices[0].address == "AA:BB:CC:DD:EE:01"
            continue
        assert main([command, address, "--type", "bm6"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: battery-hawk {command}") and config_says in err


@pytest.mark.parametrize(("adapter", "accepted"), [
    ("hci0", True), ("hci12", True), ("00:1A:7D:DA:71:13", True),
    ("00-1A-7D-DA-71-13", False), ("bluetooth0", False), ("", False),
])
def test_the_command_line_takes_the_adapters_the_config_takes(
    adapter: str, accepted: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        parse_config({"bluetooth": {"adapter": adapter},
                      "devices": [{"address": "AA:BB:CC:DD:EE:01", "type": "bm6"}]})
    except ConfigError:
        in_config = False
    else:
        in_config = True
    assert in_config is accepted
    if accepted:
        assert _parser().parse_args(["scan", "--adapter", adapter]).adapter == adapter
    else:
        assert main(["scan", "--adapter", adapter]) == 2
        assert "is not an adapter name like hci0" in capsys.readouterr().err

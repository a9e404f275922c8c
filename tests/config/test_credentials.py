"""The broker password as a systemd credential ($CREDENTIALS_DIRECTORY)."""

from __future__ import annotations

from pathlib import Path

import pytest

from battery_hawk.cli import main
from battery_hawk.config import load_config, parse_config
from battery_hawk.errors import ConfigError

ONE_DEVICE = {"devices": [{"address": "AA:BB:CC:DD:EE:0F", "type": "bm6"}]}
DEVICE = "devices:\n  - {address: 'AA:BB:CC:DD:EE:01', type: bm6}\n"


def credentials(tmp_path: Path, password: str = "s3cret") -> Path:
    """What systemd makes of LoadCredential=mqtt:...: a directory with a file `mqtt`."""
    folder = tmp_path / "credentials"
    folder.mkdir()
    (folder / "mqtt").write_text(password + "\n")
    return folder


@pytest.mark.parametrize("spelling",
                         ["${CREDENTIALS_DIRECTORY}/mqtt", "$CREDENTIALS_DIRECTORY/mqtt"])
def test_password_file_expands_the_credentials_directory(tmp_path: Path, spelling: str) -> None:
    folder = credentials(tmp_path)
    config = parse_config({"mqtt": {"password_file": spelling}, **ONE_DEVICE},
                          environ={"CREDENTIALS_DIRECTORY": str(folder)})
    assert config.mqtt.password == "s3cret"
    assert config.mqtt.password_file == str(folder / "mqtt")


def test_credential_named_mqtt_is_found_without_any_password_key(tmp_path: Path) -> None:
    folder = credentials(tmp_path, "by-name")
    config = parse_config(ONE_DEVICE, environ={"CREDENTIALS_DIRECTORY": str(folder)})
    assert config.mqtt.password == "by-name"


def test_explicit_password_wins_over_the_credential(tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(credentials(tmp_path)),
           "BATTERY_HAWK_MQTT_PASSWORD": "from-env"}
    assert parse_config(ONE_DEVICE, environ=env).mqtt.password == "from-env"
    inline = {"mqtt": {"password": "inline"}, **ONE_DEVICE}
    assert parse_config(inline, environ=env).mqtt.password == "inline"


def test_credentials_directory_without_the_credential_gives_no_password(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(folder)}
    assert parse_config(ONE_DEVICE, environ=env).mqtt.password is None


def test_unset_variable_in_password_file_names_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"mqtt": {"password_file": "${CREDENTIALS_DIRECTORY}/mqtt"},
                      **ONE_DEVICE}, environ={})
    assert info.value.key == "mqtt.password_file"
    assert "$CREDENTIALS_DIRECTORY is not set" in str(info.value)
    assert "LoadCredential=" in str(info.value)


def test_tls_paths_expand_variables_too(tmp_path: Path) -> None:
    folder = credentials(tmp_path)
    (folder / "ca.pem").write_text("not checked here\n")
    config = parse_config({"mqtt": {"tls": {"ca_cert": "${CREDENTIALS_DIRECTORY}/ca.pem"}},
                           **ONE_DEVICE},
                          environ={"CREDENTIALS_DIRECTORY": str(folder)})
    assert config.mqtt.tls.ca_cert == str(folder / "ca.pem")


def test_check_config_reads_the_credential_from_the_real_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = credentials(tmp_path, "hunter2")
    path = tmp_path / "bh.yaml"
    path.write_text("mqtt:\n  password_file: ${CREDENTIALS_DIRECTORY}/mqtt\n"
                    f"storage:\n  path: {tmp_path / 'state'}\n{DEVICE}")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    assert load_config(path).mqtt.password == "hunter2"
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "***" in out and str(folder / "mqtt") in out

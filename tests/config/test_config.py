"""Config loading: typed values, and a clear error naming file and key for every fault."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from battery_hawk.config import Config, MqttConfig, _sanitise_id, load_config, parse_config
from battery_hawk.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "battery-hawk.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bh.yaml"
    path.write_text(text)
    return path


ONE_DEVICE = {"devices": [{"address": "AA:BB:CC:DD:EE:0F", "type": "bm6"}]}


def error_for(tmp_path: Path, text: str) -> ConfigError:
    if "devices" not in text:  # a config without devices is a fault of its own
        text += "\ndevices: [{address: 'AA:BB:CC:DD:EE:0F', type: bm6}]\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    return info.value


def test_example_config_loads_with_documented_values() -> None:
    config = load_config(EXAMPLE, environ={})
    # not hard-coded: two Pis with the copied file must not share an MQTT client id
    assert config.gateway_id == Config().gateway_id == _sanitise_id(socket.gethostname())
    assert config.mqtt == MqttConfig()  # the example documents exactly the defaults
    assert [d.type for d in config.devices] == ["bm6", "victron"]
    assert config.devices[0].device_id == "aabbccddee01"
    assert config.devices[1].key == bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")


def test_one_device_is_enough_everything_else_has_defaults() -> None:
    config = parse_config(ONE_DEVICE, environ={})
    assert config.mqtt.port == 1883 and len(config.devices) == 1
    assert config.gateway_id


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("mqtt: {port: 70000}", "mqtt.port", "at most 65535"),
        ("mqtt: {port: 0}", "mqtt.port", "at least 1"),
        ("mqtt: {port: '1883'}", "mqtt.port", "expected a number"),
        ("mqtt: {jitter_factor: 1.5}", "mqtt.jitter_factor", "at most 1"),
        ("mqtt: {initial_retry_delay: -1}", "mqtt.initial_retry_delay", "greater than 0"),
        ("mqtt: {message_queue_size: 0}", "mqtt.message_queue_size", "at least 1"),
        ("mqtt: {brokr: x}", "mqtt.brokr", "unknown key"),
        ("mqtt: {tls: {enabled: yes, ca: x}}", "mqtt.tls.ca", "unknown key"),
        ("mqtt: {enabled: 1}", "mqtt.enabled", "true or false"),
        ("mqtt: {max_retry_delay: 0.5}", "mqtt.max_retry_delay", "initial_retry_delay"),
        ("mqtt: [1, 2]", "mqtt", "expected a mapping"),
        ("logging: {format: xml}", "logging.format", "not one of"),
        ("devices: [{type: bm6}]", "devices[0].address", "missing required key"),
        ("devices: [{address: 'zz', type: bm6}]", "devices[0].address", "not a MAC"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm99}]", "devices[0].type", "bm6"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: victron}]", "devices[0].key", "key"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6, key: abcd}]",
         "devices[0].key", "a key is 32 hex digits; you gave 4"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6, key: 0123456789abcdeg}]",
         "devices[0].key", "'g' at position 16 is not a hex digit"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: victron, key: 0123}]",
         "devices[0].key", "Instant readout details > show encryption data"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm7, mode: passive}]",
         "devices[0].mode", "use mode: auto or poll"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: victron, mode: poll,"
         " key: 0da694539597f9cf6c613cde60d7bf05}]", "devices[0].mode", "advertisements only"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6, mode: sometimes}]",
         "devices[0].mode", "not one of auto, passive, poll"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6, poll_interval: 0}]",
         "devices[0].poll_interval", "at least 1"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6},"
         " {address: 'aa:bb:cc:dd:ee:01', type: bm2}]", "devices[1].address", "also devices[0]"),
        ("gateway_id: 'a/b'", "gateway_id", "letters, digits"),
        ("mqtt: {topic_prefix: 'a/#'}", "mqtt.topic_prefix", "topic prefix"),
        ("mqtt: {jitter_factor: .nan}", "mqtt.jitter_factor", "finite"),
        ("devices: [{address: 'AA:BB:CC:DD:EE:01', type: bm6, poll_interval: .inf}]",
         "devices[0].poll_interval", "finite"),
    ],
)
def test_bad_value_names_file_key_and_fault(tmp_path: Path, text: str, key: str,
                                           words: str) -> None:
    error = error_for(tmp_path, text)
    assert error.key == key
    assert words in str(error)
    assert str(tmp_path / "bh.yaml") in str(error)


def test_unknown_type_lists_known_types(tmp_path: Path) -> None:
    error = error_for(tmp_path, "devices: [{address: 'AA:BB:CC:DD:EE:01', type: nope}]")
    for family in ("bm2", "bm6", "bm7", "victron", "bas"):
        assert family in str(error)


def test_a_victron_model_name_as_type_says_it_is_victron(tmp_path: Path) -> None:
    error = error_for(tmp_path, "devices: [{address: 'AA:BB:CC:DD:EE:01', type: smartshunt}]")
    assert "devices[0].type" in str(error) and "SmartShunt, BMV or SmartSolar is victron" in str(
        error
    )


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    error = error_for(tmp_path, "mqtt:\n  port: [1\n")
    assert "invalid YAML" in str(error) and "line" in str(error)


def test_a_tab_in_yaml_says_to_indent_with_spaces(tmp_path: Path) -> None:
    error = error_for(tmp_path, "mqtt:\n\tbroker: localhost\n")
    assert "line 2" in str(error) and "replace the tab with spaces" in str(error)


def test_a_misindented_key_says_to_check_the_indentation(tmp_path: Path) -> None:
    text = "devices:\n- address: 'AA:BB:CC:DD:EE:01'\n  type: bm6\n   name: x\n"
    assert "indentation" in str(error_for(tmp_path, text))


@pytest.mark.parametrize("value", ["60s", "'60'", "11,8"])
def test_a_number_written_as_a_string_says_how_to_write_it(tmp_path: Path, value: str) -> None:
    text = f"devices:\n- address: 'AA:BB:CC:DD:EE:01'\n  type: bm6\n  poll_interval: {value}\n"
    error = error_for(tmp_path, text)
    assert "devices[0].poll_interval" in str(error)
    assert "without quotes or a unit" in str(error)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml")


def test_password_from_file_then_config_then_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    env = {"BATTERY_HAWK_MQTT_PASSWORD": "from-env"}
    from_file = {"mqtt": {"password_file": str(secret)}, **ONE_DEVICE}
    assert parse_config(from_file, environ=env).mqtt.password == "from-file"
    inline = {"mqtt": {"password": "inline"}, **ONE_DEVICE}
    assert parse_config(inline, environ=env).mqtt.password == "inline"
    assert parse_config(ONE_DEVICE, environ=env).mqtt.password == "from-env"
    assert parse_config(ONE_DEVICE, environ={}).mqtt.password is None


def test_password_and_password_file_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"mqtt": {"password": "a", "password_file": "/x"}, **ONE_DEVICE}, environ={})
    assert info.value.key == "mqtt.password_file"


def test_masked_config_hides_password_and_keys() -> None:
    config = parse_config({"mqtt": {"password": "hunter2"}, "devices": [
        {"address": "AA:BB:CC:DD:EE:02", "type": "victron",
         "key": "0df4d0395b7d1a876c0c33ecb9e70dcd"}]}, environ={})
    masked = repr(config.masked())
    assert "hunter2" not in masked and "0df4d0395b7d" not in masked
    assert "hunter2" not in repr(config)


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.gateway_id = "x"  # type: ignore[misc]

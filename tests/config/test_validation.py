"""Faults a new user makes in a config file: each exits 2 naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from battery_hawk.cli import main
from battery_hawk.config import MQTT_TLS_PORT, load_config
from battery_hawk.errors import ConfigError

BM6 = "  - {address: 'AA:BB:CC:DD:EE:01', type: bm6, name: Car}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bh.yaml"
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run check-config on the text; it must exit 2. Returns what it said."""
    path = write(tmp_path, f"storage: {{path: '{tmp_path / 'state'}'}}\n{text}")
    assert main(["check-config", "-c", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


@pytest.mark.parametrize("text", ["", "# only comments\n", "---\n"])
def test_empty_file_says_the_daemon_would_do_nothing(tmp_path: Path, text: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, text)
    assert main(["run", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "devices:" in err and "would do nothing" in err


def test_no_devices_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = check(tmp_path, "devices: []\n", capsys)
    assert ": devices: no devices configured" in err and "battery-hawk scan" in err


def test_two_devices_with_one_name_are_refused(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    err = check(tmp_path, "devices:\n" + BM6
                + "  - {address: 'AA:BB:CC:DD:EE:02', type: bm2, name: ' car'}\n", capsys)
    assert "devices[1].name" in err and "also devices[0]'s" in err and "own name" in err


# YAML double-quoted escapes: a newline, a tab, an escape, blanks, a zero-width space
@pytest.mark.parametrize("name", [r"Car\nVan", r"Car\tbattery", r"\e[31mCar", "   ",
                                  r"Car\u200b"],
                         ids=["newline", "tab", "escape", "blank", "zero-width"])
def test_a_device_name_with_a_control_character_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
) -> None:
    err = check(tmp_path, "devices:\n  - {address: 'AA:BB:CC:DD:EE:01', type: bm6, "
                f'name: "{name}"}}\n', capsys)
    assert "devices[0].name" in err and "plain text on one line" in err


def test_a_queue_too_large_for_memory_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    err = check(tmp_path, "mqtt: {message_queue_size: 10000000}\ndevices:\n" + BM6, capsys)
    assert "mqtt.message_queue_size" in err and "100000" in err


@pytest.mark.parametrize(("text", "key", "says"), [
    ("mqtt: {broker: ''}", "mqtt.broker", "is empty"),
    ("mqtt: {broker: 'mqtt://192.168.1.10:1883'}", "mqtt.broker", "without mqtt://"),
    ("mqtt: {broker: 'my broker'}", "mqtt.broker", "not a host name"),
    ("mqtt: {broker: '192.168.1.10:1884'}", "mqtt.broker", "mqtt.port: 1884"),
    ("mqtt: {broker: '192.168.1.300'}", "mqtt.broker", "not an IP address"),
    ("http: {listen: 'localhost:9105'}", "http.listen", "http.port: 9105"),
    ("bluetooth: {esphome_proxies: [{host: '192.168.1.50:6053'}]}",
     "bluetooth.esphome_proxies[0].host", "bluetooth.esphome_proxies[0].port: 6053"),
    ("bluetooth: {esphome_proxies: [{host: '999999'}]}",
     "bluetooth.esphome_proxies[0].host", "not an IP address"),
])
def test_a_host_written_as_a_url_with_a_port_or_garbled_says_how_to_write_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str, says: str,
) -> None:
    err = check(tmp_path, f"{text}\ndevices:\n" + BM6, capsys)
    assert f"{key}:" in err and says in err, err


@pytest.mark.parametrize("host", ["broker.local", "192.168.1.10", "::1", "fe80::1%eth0",
                                  "homeassistant.local.", "mosquitto_1"])
def test_host_names_and_addresses_pass(tmp_path: Path, host: str) -> None:
    path = write(tmp_path, f"mqtt: {{broker: '{host}'}}\ndevices:\n" + BM6)
    assert load_config(path).mqtt.broker == host


@pytest.mark.parametrize("path", ["''", "state", "5", "'./bh'"])
def test_storage_path_must_be_absolute(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       path: str) -> None:
    file = write(tmp_path, f"storage: {{path: {path}}}\ndevices:\n" + BM6)
    assert main(["check-config", "-c", str(file)]) == 2
    err = capsys.readouterr().err
    assert "storage.path" in err and "absolute path" in err


def test_storage_path_expands_the_home_folder(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    file = write(tmp_path, "storage: {path: ~/battery-hawk}\ndevices:\n" + BM6)
    assert load_config(file).storage.path == str(tmp_path / "battery-hawk")


def test_unquoted_mac_read_as_a_number_says_quote_it(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # YAML 1.1 reads 10:20:30:40:50:59 as the base-60 integer 28093372259
    err = check(tmp_path, "devices:\n  - address: 10:20:30:40:50:59\n    type: bm6\n", capsys)
    assert "devices[0].address" in err and "quote it" in err


def test_every_fault_of_a_file_is_reported_at_once(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    err = check(tmp_path, "mqtt:\n  port: 99999\n  qos: 3\n  brokr: x\nhttp: {port: -1}\n"
                "devices:\n  - {address: 'zz', type: bm6}\n  - {type: bm6}\n"
                "  - {address: 'AA:BB:CC:DD:EE:03', type: bm6, poll_interval: 0}\n", capsys)
    for key in ("mqtt.port", "mqtt.qos", "mqtt.brokr", "http.port", "devices[0].address",
                "devices[1].address", "devices[2].poll_interval"):
        assert f"  {key}: " in err, key
    assert "7 problems" in err


def test_semantic_faults_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt: {password: a, password_file: /x}\ndevices:\n" + BM6 + BM6
                 + "  - {address: 'AA:BB:CC:DD:EE:04', type: victron}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    keys = [p.key for p in info.value.problems]
    assert keys == ["mqtt.password_file", "devices[1].address", "devices[1].name",
                    "devices[2].key"]


@pytest.mark.parametrize(("text", "keys"), [
    ("devices:\n  - {address: 'AA:BB:CC:DD:EE:1', type: bm8}\n",
     ["devices[0].address", "devices[0].type"]),
    ("devices:\n  - {address: 'AA:BB:CC:DD:EE:01', type: bm8, nominal_voltage: 13}\n",
     ["devices[0].type", "devices[0].nominal_voltage"]),
    ("mqtt: {password_file: /nonexistent/pw, tls: {enabled: true, ca_cert: /nonexistent/ca"
     ".pem}, initial_retry_delay: 9, max_retry_delay: 2}\ndevices:\n" + BM6,
     ["mqtt.password_file", "mqtt.tls.ca_cert", "mqtt.max_retry_delay"]),
], ids=["address-and-type", "type-and-voltage", "password-tls-and-delays"])
def test_one_fault_does_not_hide_another(tmp_path: Path, text: str, keys: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    found = [p.key for p in info.value.problems] or [info.value.key]
    assert all(key in found for key in keys), found


def test_one_fault_keeps_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "mqtt: {port: 0}\ndevices:\n" + BM6), environ={})
    assert info.value.key == "mqtt.port" and info.value.problems == (info.value,)


@pytest.mark.parametrize(("make", "words"), [
    (lambda d: d / "missing.pem", "No such file or directory"),
    (lambda d: d, "Is a directory"),
])
def test_unreadable_ca_file_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     make: object, words: str) -> None:
    ca = make(tmp_path)  # type: ignore[operator]
    err = check(tmp_path, f"mqtt:\n  tls: {{enabled: true, ca_cert: '{ca}'}}\ndevices:\n{BM6}",
                capsys)
    assert "mqtt.tls.ca_cert" in err and words in err


def test_ca_file_that_is_no_certificate_says_so(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("this is the broker's password, not a certificate\n")
    err = check(tmp_path, f"mqtt:\n  tls: {{enabled: true, ca_cert: '{ca}'}}\ndevices:\n{BM6}",
                capsys)
    assert "mqtt.tls.ca_cert" in err and "not a PEM CA certificate" in err


def test_tls_without_a_port_uses_8883(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "mqtt: {tls: {enabled: true}}\ndevices:\n" + BM6),
                         environ={})
    assert config.mqtt.port == MQTT_TLS_PORT == 8883
    given = load_config(write(tmp_path, "mqtt: {port: 8884, tls: {enabled: true}}\n"
                              "devices:\n" + BM6), environ={})
    assert given.mqtt.port == 8884
    plain = load_config(write(tmp_path, "devices:\n" + BM6), environ={})
    assert plain.mqtt.port == 1883


def test_storage_path_the_daemon_cannot_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = write(tmp_path, f"storage: {{path: '{blocker / 'state'}'}}\ndevices:\n{BM6}")
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "storage.path" in err and "not a folder" in err and "install -d" in err
    assert main(["run", "-c", str(path)]) == 2


def test_storage_path_that_does_not_exist_yet_is_fine_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "not" / "yet"
    path = write(tmp_path, f"storage: {{path: '{state}'}}\ndevices:\n{BM6}")
    assert main(["check-config", "-c", str(path)]) == 0
    assert not state.exists()


def test_check_config_prints_each_devices_resolved_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"storage: {{path: '{tmp_path}'}}\ndevices:\n{BM6}"
                 "  - {address: 'AA:BB:CC:DD:EE:02', type: bm2, id: starter}\n")
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Car (AA:BB:CC:DD:EE:01, bm6): id aabbccddee01 -> " \
           "battery_hawk/device/aabbccddee01/state" in out
    assert "BM2 EE:02 (AA:BB:CC:DD:EE:02, bm2): id starter -> " in out


def test_faults_of_every_kind_come_in_one_report(tmp_path: Path) -> None:
    # a bad value, an unknown key, a device that cannot be built, and faults that span keys
    path = write(tmp_path, "gateway_id: garage pi\n"
                 f"mqtt: {{tls: {{enabled: true, ca_cert: '{tmp_path / 'none.pem'}'}}}}\n"
                 "devices:\n"
                 "  - {address: 10:20:30:40:50:59, type: bm6, name: Van}\n"
                 "  - {address: 'AA:BB:CC:DD:EE:02', type: victron, name: Car}\n"
                 "  - {address: 'AA:BB:CC:DD:EE:03', type: bm6, poll_intervall: 30}\n"
                 "  - {address: 'AA:BB:CC:DD:EE:04', type: bm2, name: car}\n"
                 "  - {address: 'AA:BB:CC:DD:EE:05', type: victron, key: '0123'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    keys = sorted(p.key or "" for p in info.value.problems)
    assert keys == sorted(["gateway_id", "devices[0].address", "devices[2].poll_intervall",
                           "mqtt.tls.ca_cert", "devices[1].key", "devices[3].name",
                           "devices[4].key"])


@pytest.mark.parametrize(("text", "line"), [
    ("mqtt: {port: 1883}\ndevices:\n" + BM6 + "mqtt: {port: 1884}\n", 5),
    ("devices:\n  - {address: 'AA:BB:CC:DD:EE:01', type: bm6, type: victron}\n", 3),
])
def test_a_key_given_twice_is_refused_not_silently_overridden(
    tmp_path: Path, text: str, line: int, capsys: pytest.CaptureFixture[str]
) -> None:
    err = check(tmp_path, text, capsys)
    assert f"invalid YAML at line {line}" in err and "given twice" in err


def test_a_merge_key_may_still_be_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, f"storage: {{path: '{tmp_path}'}}\n"
                 "devices:\n  - &car {address: 'AA:BB:CC:DD:EE:01', type: bm6, name: Car}\n"
                 "  - <<: *car\n    address: 'AA:BB:CC:DD:EE:02'\n    name: Van\n")
    config = load_config(path)
    assert [(d.address, d.type, d.name) for d in config.devices] == [
        ("AA:BB:CC:DD:EE:01", "bm6", "Car"), ("AA:BB:CC:DD:EE:02", "bm6", "Van")]


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bh.yaml"
    path.write_bytes(b"devices:\n  - name: Wohnmobil \xe4\n")  # Latin-1, not UTF-8
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "0xe4" in err and "Traceback" not in err


def test_a_list_of_adapters_under_adapter_points_to_adapters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    err = check(tmp_path, "bluetooth: {adapter: [hci0, hci1]}\ndevices:\n" + BM6, capsys)
    assert "bluetooth.adapter:" in err and "bluetooth.adapters (with an s)" in err

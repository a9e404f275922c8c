"""bluetooth.esphome_proxies: read, checked, masked; a bad entry exits 2 naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from battery_hawk.cli import main
from battery_hawk.config import EsphomeProxyConfig, parse_config
from battery_hawk.errors import ConfigError
from tests.esphome.conftest import KEY

DEVICES = [{"address": "AA:BB:CC:DD:EE:01", "type": "bm6"}]


def config(proxies: object) -> dict[str, object]:
    return {"devices": DEVICES, "bluetooth": {"esphome_proxies": proxies}}


def problems(proxies: object) -> dict[str | None, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(proxies), file="c.yaml")
    return {p.key: p.reason for p in caught.value.problems}


def test_a_proxy_needs_only_its_host() -> None:
    parsed = parse_config(config([{"host": "van-proxy.local"},
                                  {"host": "10.0.0.5", "port": 6054, "encryption_key": KEY}]))
    assert parsed.bluetooth.esphome_proxies == (
        EsphomeProxyConfig("van-proxy.local"),
        EsphomeProxyConfig("10.0.0.5", 6054, encryption_key=KEY))


def test_every_bad_entry_is_named_with_its_fix() -> None:
    found = problems([
        {"host": "10.0.0.5", "encryption_key": "not-a-key"},
        {"host": "10.0.0.6", "encryption_key": "AAAA"},
        {"host": "10.0.0.5"},
        {"port": 6053},
        {"host": "bad host"},
        {"host": "10.0.0.7", "encryption_key": KEY, "password": "x"},
        {"host": "10.0.0.8", "port": 70000},
        {"host": "10.0.0.9", "psk": KEY},
    ])
    assert found == {
        "bluetooth.esphome_proxies[0].encryption_key":
            "encryption_key is not base64; copy the key from the proxy's YAML (`api: "
            "encryption: key:`), 44 characters of base64",
        "bluetooth.esphome_proxies[1].encryption_key":
            "encryption_key decodes to 3 bytes, not 32; copy the key from the proxy's YAML "
            "(`api: encryption: key:`), 44 characters of base64",
        "bluetooth.esphome_proxies[2].host":
            "10.0.0.5:6053 is also bluetooth.esphome_proxies[0]; list each proxy once",
        "bluetooth.esphome_proxies[3].host": "missing required key",
        "bluetooth.esphome_proxies[4].host":
            "'bad host' is not a host name or IP address: a name holds letters, digits, "
            "'-' and dots, e.g. broker.local",
        "bluetooth.esphome_proxies[5].password":
            "give either encryption_key or password: an encrypted proxy ignores the legacy "
            "API password; remove password",
        "bluetooth.esphome_proxies[6].port": "must be at most 65535, got 70000",
        "bluetooth.esphome_proxies[7].psk":
            "unknown key (known: host, port, encryption_key, password)",
    }


def test_check_config_exits_2_and_masks_proxy_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config([{"host": "10.0.0.5", "encryption_key": "zz"}])))
    assert main(["check-config", "-c", str(path)]) == 2
    assert "bluetooth.esphome_proxies[0].encryption_key" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(config([{"host": "10.0.0.5", "encryption_key": KEY},
                                           {"host": "10.0.0.6", "password": "hunter2"}])))
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "10.0.0.5" in out and KEY not in out and "hunter2" not in out


def test_proxy_keys_are_secrets() -> None:
    parsed = parse_config(config([{"host": "10.0.0.5", "encryption_key": KEY},
                                  {"host": "10.0.0.6", "password": "hunter2"}]))
    assert {KEY, "hunter2"} <= set(parsed.secrets())


def test_a_bad_port_makes_no_false_duplicate_and_host_names_ignore_case() -> None:
    found = problems([
        {"host": "127.0.0.1"},
        {"host": "127.0.0.1", "port": 70000},  # refused: it stands at 6053 meanwhile
        {"host": "Van-Proxy.local"},
        {"host": "van-proxy.local"},
    ])
    assert set(found) == {"bluetooth.esphome_proxies[1].port",
                          "bluetooth.esphome_proxies[3].host"}
    assert "is also bluetooth.esphome_proxies[2]" in found["bluetooth.esphome_proxies[3].host"]

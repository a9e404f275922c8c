"""bluetooth.adapters / bluetooth.adapter: which local adapters the daemon uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from battery_hawk.config import parse_config
from battery_hawk.errors import ConfigError

DEVICE = {"devices": [{"address": "AA:BB:CC:DD:EE:0F", "type": "bm6"}]}


def bluetooth(settings: dict[str, object]) -> object:
    return parse_config({**DEVICE, "bluetooth": settings}, environ={}).bluetooth


def test_every_adapter_is_used_unless_some_are_named() -> None:
    assert bluetooth({}).selected_adapters is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(("settings", "selected"), [
    ({"adapters": ["hci0", "hci1"]}, ("hci0", "hci1")),
    ({"adapters": ["hci1", "00:1a:7d:da:71:13"]}, ("hci1", "00:1a:7d:da:71:13")),
    ({"adapter": "hci1"}, ("hci1",)),  # the older key for one adapter keeps working
    ({"adapter": "00:1A:7D:DA:71:13"}, ("00:1A:7D:DA:71:13",)),
])
def test_adapters_are_named_or_given_by_mac(settings: dict[str, object],
                                            selected: tuple[str, ...]) -> None:
    assert bluetooth(settings).selected_adapters == selected  # type: ignore[attr-defined]


@pytest.mark.parametrize(("settings", "key", "words"), [
    ({"adapter": "hci0", "adapters": ["hci1"]}, "bluetooth.adapter",
     "not both: move hci0 into bluetooth.adapters"),
    ({"adapters": []}, "bluetooth.adapters", "leave bluetooth.adapters out"),
    ({"adapters": "hci0"}, "bluetooth.adapters", "expected a list"),
    ({"adapters": ["hci0", "usb1"]}, "bluetooth.adapters[1]", "'usb1' is not an adapter name"),
    ({"adapters": ["hci0", "hci0"]}, "bluetooth.adapters[1]", "listed twice"),
    ({"adapters": ["00:1A:7D:DA:71:13", "00:1a:7d:da:71:13"]}, "bluetooth.adapters[1]",
     "listed twice"),
    ({"adapter": "bluetooth0"}, "bluetooth.adapter", "`bluetoothctl list` shows yours"),
])
def test_a_bad_adapter_entry_names_its_key_and_the_fix(
    settings: dict[str, object], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        bluetooth(settings)
    assert info.value.key == key
    assert words in info.value.reason


def test_check_config_exits_2_naming_the_adapter_key(tmp_path: Path) -> None:
    config = tmp_path / "bh.yaml"
    config.write_text("bluetooth: {adapter: hci0, adapters: [hci1]}\n"
                      "devices: [{address: 'AA:BB:CC:DD:EE:0F', type: bm6}]\n"
                      f"storage: {{path: '{tmp_path}'}}\n")
    done = subprocess.run([sys.executable, "-m", "battery_hawk", "check-config", "-c",
                           str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "bluetooth.adapter: give bluetooth.adapter (one adapter) or bluetooth.adapters" \
        in done.stderr

"""Every public capture in captures/ through the decoders, checked against what was reported.

One JSON file per case; each names its public source and what the device or its owner
reported. ``kind`` says how to apply it:

- ``frame``: decode each of ``frames`` (ciphertext) or ``plaintexts`` (published
  decrypted, encrypted here with the family's public key) with ``driver``; match
  ``expect_each[i]`` or ``expect`` (floats within 0.01; ``not_a_reading`` expects
  NotAReading).
- ``victron``: decode each of ``frames`` with ``key``; match ``expect`` (``model`` is
  the product name the driver learnt from the advert).
- ``victron_reject``: each of ``keys`` must raise DecodeError naming the key.
- ``advert``: ``decode_advert`` of ``advert`` with ``driver``; match ``expect`` (or the
  DecodeError it names).
- ``identify``: ``identify(advert)`` must give ``expect.family``.
- ``discovery``: every discovery document for ``fields`` obeys Home Assistant's rules.
- ``config``: loading ``yaml`` exits 2 with every string of ``message_contains_all``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from battery_hawk.cli import main
from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, DeviceInfo, Reading
from battery_hawk.protocols import Victron, get_driver, identify
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.publisher import SENSOR_SPECS, Topics, discovery_messages

CAPTURES = Path(__file__).parent / "captures"
CASES = sorted(CAPTURES.glob("*.json"))

# Units Home Assistant accepts per sensor device class (HA sensor docs, DEVICE_CLASS_UNITS).
HA_UNITS = {
    "voltage": {"V", "mV"},
    "battery": {"%"},
    "temperature": {"°C", "°F", "K"},
    "current": {"A", "mA"},
    "power": {"W", "kW"},
    "apparent_power": {"VA"},
    "duration": {"d", "h", "min", "s", "ms"},
    "energy": {"Wh", "kWh", "MWh"},
    "signal_strength": {"dB", "dBm"},
}


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def advertisement(raw: dict[str, Any]) -> Advertisement:
    return Advertisement(
        address=raw["address"],
        name=raw.get("name"),
        manufacturer_data={int(k): bytes.fromhex(v) for k, v in raw["manufacturer_data"].items()},
    )


def matches(reading: Reading, expect: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    got = {**{name: getattr(reading, name) for name in expect if hasattr(reading, name)},
           **(extra or {})}
    for name, want in expect.items():
        value = got[name]
        if isinstance(want, float | int) and not isinstance(want, bool):
            assert value is not None and abs(value - want) <= 0.01, (name, value, want)
        elif want is None:
            assert value is None, (name, value)
        else:
            assert value is not None and str(value) == str(want), (name, value, want)


def run_frame(case: dict[str, Any]) -> None:
    driver = get_driver(case["driver"])()
    if "plaintexts" in case:
        aes = ZeroIvCbc(driver.default_key or b"")
        frames = [aes.encrypt(bytes.fromhex(p)) for p in case["plaintexts"]]
    else:
        frames = [bytes.fromhex(f) for f in case["frames"]]
    expects = case.get("expect_each") or [case["expect"]] * len(frames)
    assert len(expects) == len(frames)
    for frame, expect in zip(frames, expects, strict=True):
        if expect.get("not_a_reading"):
            with pytest.raises(NotAReading):
                driver.decode(frame)
            continue
        matches(driver.decode(frame), expect)


def run_victron(case: dict[str, Any]) -> None:
    driver = Victron(bytes.fromhex(case["key"]))
    expect = dict(case["expect"])
    model = expect.pop("model", None)
    for frame in case["frames"]:
        reading = driver.decode(bytes.fromhex(frame))
        matches(reading, expect)
        assert reading.voltage is not None or "voltage" in expect  # never a blank reading
        if model is not None:
            assert driver.device_model == model


def run_victron_reject(case: dict[str, Any]) -> None:
    for key in case["keys"]:
        for frame in case["frames"]:
            with pytest.raises(DecodeError, match=case["expect"]["message_contains"]):
                Victron(bytes.fromhex(key)).decode(bytes.fromhex(frame))


def run_advert(case: dict[str, Any]) -> None:
    driver = get_driver(case["driver"])()
    adv = advertisement(case["advert"])
    expect = case["expect"]
    if expect.get("error") == "DecodeError":
        with pytest.raises(DecodeError, match=expect["message_contains"]):
            driver.decode_advert(adv)
        return
    matches(driver.decode_advert(adv), expect)


def run_identify(case: dict[str, Any]) -> None:
    found = identify(advertisement(case["advert"]))
    assert found is not None and found.type_name == case["expect"]["family"], found


def run_discovery(case: dict[str, Any]) -> None:
    device = DeviceInfo(**case["device"])
    topics = Topics("battery_hawk", "field-case")
    texts = set(case["text_fields"])
    fields = [f for f in case["fields"] if f in SENSOR_SPECS]
    assert fields == case["fields"], "a field of the case has no sensor description"
    docs = [json.loads(p) for _, p in discovery_messages(device, fields, topics, 180)]
    assert len(docs) == len(fields)
    for field, doc in zip(fields, docs, strict=True):
        if field in texts:
            assert "unit_of_measurement" not in doc and "state_class" not in doc, doc
            continue
        device_class = doc.get("device_class")
        if device_class is not None:
            assert doc["unit_of_measurement"] in HA_UNITS[device_class], doc
        if device_class == "energy":
            assert doc["state_class"] in ("total", "total_increasing"), doc


def run_config(case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", "-c", str(CAPTURES / case["yaml"])])
    assert code == 2
    err = capsys.readouterr().err
    for text in case["expect"]["message_contains_all"]:
        assert text in err, (text, err)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_capture(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = load(path)
    assert case.get("source"), "every capture names its public source"
    assert "reported" in case, "every capture says what the device or its owner reported"
    kind = case["kind"]
    if kind == "config":
        run_config(case, capsys)
        return
    runners = {
        "frame": run_frame,
        "victron": run_victron,
        "victron_reject": run_victron_reject,
        "advert": run_advert,
        "identify": run_identify,
        "discovery": run_discovery,
    }
    runners[kind](case)


def test_the_corpus_holds_every_field_case() -> None:
    stems = {p.stem for p in CASES}
    for stem in (
        "02_bm2_domoticz_12v79", "03_bm6_battery_guard_advert", "04_bm7_bm300pro_live",
        "05_victron_smartsolar_negative_current", "06_victron_dcdc_offreason_129",
        "07_victron_orionxs_offreason_136", "09_victron_orionxs_charging",
        "10_victron_phoenix_inverter", "11_victron_battery_protect_24v",
        "12_victron_key_mismatch_real_advert", "13_ha_discovery_solar_rules",
        "14_config_key_31_digits",
    ):
        assert stem in stems

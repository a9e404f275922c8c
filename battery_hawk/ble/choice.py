"""Which radio reads a device: a pure rule over what each radio knows of it.

Inputs per radio (one `RadioView` each): the RSSI of the device's latest advertisement
heard there and how old it is, recent connection outcomes of this device through that
radio, and the radio's free connection slots. Output: the radios in the order to try.

The rule, in dB so that every input weighs against signal strength:

    score = RSSI of an advert heard within `heard_within` s (else UNHEARD_RSSI)
            + success_bonus      if the last success through it is within success_memory s
            - failure_penalty * failures   if the last failure is within failure_memory s
            - busy_penalty       if it has no free connection slot now

Highest score first; ties keep the order the radios were given in (registration order).
The success bonus is hysteresis: a device stays on the radio that reads it unless
another hears it clearly better, so two radios of about equal signal do not take turns.
A failure counts until the next success through that radio (the caller resets it) and
fades after failure_memory, so a radio that failed once gets another chance later.
No I/O, no clock: ages are passed in (seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["UNHEARD_RSSI", "ChoiceRules", "RadioView", "rank_radios", "score"]

UNHEARD_RSSI = -127.0  # dBm: below any RSSI a BLE controller reports (HCI: -127..20)


@dataclass(frozen=True, slots=True)
class RadioView:
    """What one radio knows of one device.

    rssi: dBm of the latest advertisement of the device heard on this radio, or None if
    it never heard one; heard_age: seconds since then. failures: connection failures of
    this device through this radio since its last success there; failure_age: seconds
    since the latest of them. success_age: seconds since the last successful connection
    through this radio (None: never). free_slots: connections it could open now.
    """

    radio: str
    rssi: int | None = None
    heard_age: float | None = None
    failures: int = 0
    failure_age: float | None = None
    success_age: float | None = None
    free_slots: int = 1


@dataclass(frozen=True, slots=True)
class ChoiceRules:
    """The weights of the rule (seconds and dB)."""

    heard_within: float = 120.0  # an older advert says nothing about the signal now
    success_bonus: float = 6.0  # dB for the radio that read the device lately
    success_memory: float = 900.0
    failure_penalty: float = 15.0  # dB per failure since the last success
    failure_memory: float = 600.0
    busy_penalty: float = 10.0  # dB: a radio without a free slot would make the visit wait

    def __post_init__(self) -> None:
        if min(self.heard_within, self.success_memory, self.failure_memory) < 0 or min(
            self.success_bonus, self.failure_penalty, self.busy_penalty
        ) < 0:
            raise ValueError("ChoiceRules weights and memories must not be negative")


def score(view: RadioView, rules: ChoiceRules) -> float:
    """The radio's score for the device in dB (higher is better); see the module doc."""
    fresh = (view.rssi is not None and view.heard_age is not None
             and view.heard_age <= rules.heard_within)
    value = float(view.rssi) if fresh and view.rssi is not None else UNHEARD_RSSI
    if view.success_age is not None and view.success_age <= rules.success_memory:
        value += rules.success_bonus
    if view.failures > 0 and view.failure_age is not None and (
        view.failure_age <= rules.failure_memory
    ):
        value -= rules.failure_penalty * view.failures
    if view.free_slots <= 0:
        value -= rules.busy_penalty
    return value


def rank_radios(views: Sequence[RadioView], rules: ChoiceRules | None = None) -> list[str]:
    """The radios in the order to try them for one device, best first (see module doc).

    Every radio given is in the result: one that never heard the device comes after
    those that did, but it may still reach it (BlueZ looks for a device it has not seen).
    """
    rules = rules or ChoiceRules()
    order = sorted(enumerate(views), key=lambda item: (-score(item[1], rules), item[0]))
    return [view.radio for _, view in order]

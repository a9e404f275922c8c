"""The pure rule that orders the radios to try for one device (ble/choice.py)."""

from __future__ import annotations

import pytest

from battery_hawk.ble.choice import UNHEARD_RSSI, ChoiceRules, RadioView, rank_radios, score

RULES = ChoiceRules(heard_within=120, success_bonus=6, success_memory=900,
                    failure_penalty=15, failure_memory=600, busy_penalty=10)


def heard(radio: str, rssi: int, age: float = 1.0, **kwargs: object) -> RadioView:
    return RadioView(radio=radio, rssi=rssi, heard_age=age, **kwargs)  # type: ignore[arg-type]


def test_the_radio_that_hears_the_device_strongest_comes_first() -> None:
    views = [heard("hci0", -85), heard("hci1", -60), heard("proxy", -72)]
    assert rank_radios(views, RULES) == ["hci1", "proxy", "hci0"]


def test_a_radio_that_never_heard_the_device_comes_after_those_that_did() -> None:
    views = [RadioView("hci0"), heard("hci1", -99)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]
    assert score(RadioView("hci0"), RULES) == UNHEARD_RSSI


def test_an_old_advert_says_nothing_about_the_signal_now() -> None:
    views = [heard("hci0", -50, age=121), heard("hci1", -90, age=5)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]


def test_equal_scores_keep_the_order_radios_were_given_in() -> None:
    assert rank_radios([heard("b", -70), heard("a", -70)], RULES) == ["b", "a"]
    assert rank_radios([RadioView("hci1"), RadioView("hci0")], RULES) == ["hci1", "hci0"]


def test_the_radio_that_read_the_device_lately_keeps_it_against_a_slightly_better_one() -> None:
    views = [heard("hci0", -70, success_age=30), heard("hci1", -66)]
    assert rank_radios(views, RULES) == ["hci0", "hci1"]
    views = [heard("hci0", -70, success_age=30), heard("hci1", -60)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]


def test_the_success_bonus_fades_after_its_memory() -> None:
    views = [heard("hci0", -70, success_age=901), heard("hci1", -66)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]


def test_recent_failures_push_a_strong_radio_behind_a_weaker_one() -> None:
    views = [heard("hci0", -55, failures=2, failure_age=10), heard("hci1", -75)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]
    assert score(views[0], RULES) == -55 - 2 * 15


def test_one_failure_is_not_enough_to_leave_a_much_stronger_radio() -> None:
    views = [heard("hci0", -50, failures=1, failure_age=10), heard("hci1", -80)]
    assert rank_radios(views, RULES) == ["hci0", "hci1"]


def test_failures_older_than_their_memory_no_longer_count() -> None:
    views = [heard("hci0", -55, failures=3, failure_age=601), heard("hci1", -75)]
    assert rank_radios(views, RULES) == ["hci0", "hci1"]


def test_a_radio_without_a_free_slot_yields_to_a_free_one_of_similar_signal() -> None:
    views = [heard("hci0", -60, free_slots=0), heard("hci1", -65, free_slots=1)]
    assert rank_radios(views, RULES) == ["hci1", "hci0"]


def test_a_busy_radio_stays_first_when_it_hears_the_device_much_better() -> None:
    views = [heard("hci0", -50, free_slots=0), heard("hci1", -85, free_slots=2)]
    assert rank_radios(views, RULES) == ["hci0", "hci1"]


def test_every_radio_given_is_ranked_once() -> None:
    views = [RadioView("a"), heard("b", -80, failures=4, failure_age=1, free_slots=0),
             heard("c", -40, success_age=1)]
    assert sorted(rank_radios(views, RULES)) == ["a", "b", "c"]
    assert rank_radios([], RULES) == []


def test_negative_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        ChoiceRules(failure_penalty=-1)

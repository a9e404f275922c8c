"""The lease protocol between gateways, on a simulated broker that delivers in one order."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from battery_hawk.site import Action, LeaseMessage, Ownership
from battery_hawk.site.ownership import GRACE

LEASE = 3.0
STEP = LEASE / 6
DEVICES = ("bat1", "bat2", "bat3")


@dataclass
class Site:
    """Gateways on one simulated broker: what one says, every connected one receives."""

    gateways: dict[str, Ownership] = field(default_factory=dict)
    rssi: dict[tuple[str, str], float] = field(default_factory=dict)  # (gw, dev) -> dBm
    cut: set[str] = field(default_factory=set)  # gateways cut off from the broker
    dead: set[str] = field(default_factory=set)
    queued: dict[str, list[LeaseMessage]] = field(default_factory=dict)  # said while cut off
    now: float = 0.0
    noise: random.Random | None = None
    overlaps: int = 0  # moments at which two gateways both owned one device

    def add(self, name: str, devices: tuple[str, ...] = DEVICES, **rssi: float) -> Ownership:
        gw = Ownership(name, LEASE, devices)
        self.gateways[name] = gw
        for dev, value in rssi.items():
            self.rssi[name, dev] = value
        gw.connected(self.now)
        return gw

    def live(self) -> list[tuple[str, Ownership]]:
        return [(n, g) for n, g in self.gateways.items() if n not in self.dead | self.cut]

    def deliver(self, message: LeaseMessage) -> None:
        for _, gw in self.live():
            gw.on_lease(message, self.now)

    def step(self) -> None:
        self.now += STEP
        for name, gw in self.gateways.items():
            if name in self.dead:
                continue
            for dev in DEVICES:
                if (name, dev) in self.rssi:
                    jitter = self.noise.uniform(-3, 3) if self.noise else 0.0
                    gw.heard(dev, self.rssi[name, dev] + jitter, self.now)
        for _, gw in self.live():
            report = gw.report(self.now)
            for _, other in self.live():  # the sender gets its own report back too
                other.on_report(report, self.now)
        for name, gw in list(self.gateways.items()):
            if name in self.dead:
                continue
            for message in gw.due(self.now):
                if name in self.cut:
                    self.queued.setdefault(name, []).append(message)
                else:
                    self.deliver(message)
        for dev in DEVICES:
            if len(self.owners(dev)) > 1:
                self.overlaps += 1

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP)):
            self.step()

    def owners(self, dev: str) -> list[str]:
        return [n for n, g in self.gateways.items()
                if n not in self.dead and g.owns(dev, self.now)]

    def kill(self, name: str, will: bool = True) -> None:
        self.dead.add(name)
        if will:
            for _, gw in self.live():
                gw.on_status(name, False, self.now)

    def partition(self, name: str, noticed: bool = True) -> None:
        """Cut a gateway off; a client may notice only when the link is back (frozen TCP)."""
        self.cut.add(name)
        if noticed:
            self.gateways[name].disconnected(self.now)

    def heal(self, name: str) -> None:
        self.cut.discard(name)
        gw = self.gateways[name]
        gw.connected(self.now)
        for message in self.queued.pop(name, []):  # the backlog goes out first
            self.deliver(message)


def three_gateways() -> Site:
    site = Site()
    site.add("g1", bat1=-50, bat2=-70, bat3=-80)
    site.add("g2", bat1=-65, bat2=-52, bat3=-75)
    site.add("g3", bat1=-80, bat2=-66, bat3=-55)
    return site


def test_each_device_is_owned_by_the_gateway_that_hears_it_best() -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    assert {dev: site.owners(dev) for dev in DEVICES} == {
        "bat1": ["g1"], "bat2": ["g2"], "bat3": ["g3"]}
    assert site.overlaps == 0


def test_a_steady_site_never_changes_hands_despite_rssi_noise() -> None:
    site = three_gateways()
    site.noise = random.Random(7)
    site.run(5 * LEASE)
    changes = {n: g.changes for n, g in site.gateways.items()}
    site.run(100 * LEASE)
    assert {n: g.changes for n, g in site.gateways.items()} == changes
    assert site.overlaps == 0


@pytest.mark.parametrize("will", [True, False], ids=["last-will", "silent"])
def test_a_killed_owner_is_replaced_by_the_next_best_within_two_lease_periods(
        will: bool) -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    site.kill("g1", will=will)
    killed_at = site.now
    while site.owners("bat1") != ["g2"]:
        assert site.now - killed_at <= 2 * LEASE, "no takeover within two lease periods"
        site.step()
    assert site.overlaps == 0
    assert site.owners("bat2") == ["g2"] and site.owners("bat3") == ["g3"]


def test_a_clean_stop_hands_over_at_once() -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    for message in site.gateways["g1"].release_all(site.now):
        site.deliver(message)
    site.kill("g1")
    site.step()
    assert site.owners("bat1") == ["g2"]


def test_two_claims_over_one_term_the_first_delivered_wins_everywhere() -> None:
    a, b = Ownership("a", LEASE, ["dev"]), Ownership("b", LEASE, ["dev"])
    for gw in (a, b):
        gw.connected(0.0)
    for gw, rssi in ((a, -60.0), (b, -60.0)):
        gw.heard("dev", rssi, 4.0)
    first = LeaseMessage("dev", "b", Action.CLAIM, 0, "b-1")
    second = LeaseMessage("dev", "a", Action.CLAIM, 0, "a-1")
    for gw in (a, b):
        gw.on_lease(first, 4.0)
        gw.on_lease(second, 4.0)
    assert a.owner("dev") == b.owner("dev") == "b"


def test_an_owner_cut_off_from_the_broker_stops_before_another_takes_over() -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    site.partition("g2")
    cut_at = site.now
    while site.gateways["g2"].owns("bat2", site.now):
        site.step()
    stopped = site.now - cut_at
    while site.owners("bat2") != ["g3"]:
        site.step()
    assert stopped <= LEASE < site.now - cut_at <= 2 * LEASE
    site.run(3 * LEASE)
    site.heal("g2")  # its stale renewals arrive after g3's claim: ignored everywhere
    site.run(10 * LEASE)
    assert site.overlaps == 0
    for dev in DEVICES:
        assert len(site.owners(dev)) == 1
        assert len({g.owner(dev) for _, g in site.live()}) == 1, dev


def test_an_owner_hands_over_to_a_gateway_that_hears_much_better() -> None:
    site = Site()
    site.add("g1", bat1=-75)
    site.run(3 * LEASE)
    assert site.owners("bat1") == ["g1"]
    site.add("g2", bat1=-60)  # 15 dB better
    site.run(3 * LEASE)
    assert site.owners("bat1") == ["g2"]
    site.add("g3", bat1=-55)  # only 5 dB better than g2: no change
    site.run(5 * LEASE)
    assert site.owners("bat1") == ["g2"] and site.overlaps == 0


def test_an_owner_that_loses_the_device_releases_it_to_one_that_hears_it() -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    del site.rssi["g3", "bat3"]  # g3 no longer hears bat3
    site.run(2 * LEASE + STEP)
    assert site.owners("bat3") == ["g2"]


def test_a_device_nobody_else_hears_stays_with_its_owner() -> None:
    site = Site()
    site.add("g1", bat1=-75)
    site.run(3 * LEASE)
    del site.rssi["g1", "bat1"]
    site.run(5 * LEASE)
    assert site.owners("bat1") == ["g1"]


def test_a_gateway_joining_late_learns_the_terms_and_does_not_steal() -> None:
    site = Site()
    site.add("g1", bat1=-60)
    site.run(3 * LEASE)
    late = site.add("g2", bat1=-62)
    site.run(GRACE * LEASE + 3 * LEASE)
    assert site.owners("bat1") == ["g1"]
    assert late.owner("bat1") == "g1"
    assert site.overlaps == 0


def test_only_configured_devices_are_claimed_and_others_serving_is_known() -> None:
    site = Site()
    site.add("g1", ("bat1",), bat1=-60, bat2=-40)
    g2 = site.add("g2", ("bat2",), bat2=-70)
    site.run(3 * LEASE)
    assert site.owners("bat2") == ["g2"]
    assert g2.served_elsewhere("bat1", site.now)
    assert not g2.served_elsewhere("bat3", site.now)


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "unnoticed"])
def test_a_gateway_cut_off_never_claims_what_only_looks_free_from_there(
        noticed: bool) -> None:
    site = three_gateways()
    site.run(5 * LEASE)
    site.partition("g1", noticed)  # it hears bat2 and bat3 too, and their renews stop reaching it
    site.run(4 * LEASE)
    assert not any(m.action is Action.CLAIM for m in site.queued.get("g1", []))
    changes = site.gateways["g3"].changes
    site.heal("g1")
    site.run(5 * LEASE)
    assert site.owners("bat2") == ["g2"] and site.owners("bat3") == ["g3"]
    assert site.gateways["g3"].changes == changes + 1  # bat1 only: g2 took it, g1 back


def test_renews_that_waited_in_a_queue_do_not_keep_a_lease_alive() -> None:
    a, b = Ownership("a", LEASE, ["dev"]), Ownership("b", LEASE, ["dev"])
    for gw in (a, b):
        gw.connected(0.0)
    claim = LeaseMessage("dev", "a", Action.CLAIM, 0, "aa-1", sent=4.0)
    b.on_lease(claim, 4.0)
    b.on_lease(LeaseMessage("dev", "a", Action.RENEW, 1, "aa-2", sent=5.0), 5.0)
    # a renew sent at 6.0 that waited two seconds in a queue behind a frozen link
    b.on_lease(LeaseMessage("dev", "a", Action.RENEW, 1, "aa-3", sent=6.0), 8.0)
    b.heard("dev", -60.0, 9.0)
    b.on_report(b.report(9.0), 9.0)  # b's own report came back: b's link is fine
    assert [(m.action, m.term) for m in b.due(9.0)] == [(Action.CLAIM, 1)]
    on_time = Ownership("c", LEASE, ["dev"])
    on_time.connected(0.0)
    on_time.on_lease(claim, 4.0)
    on_time.on_lease(LeaseMessage("dev", "a", Action.RENEW, 1, "aa-3", sent=8.0), 8.0)
    on_time.heard("dev", -60.0, 9.0)
    on_time.on_report(on_time.report(9.0), 9.0)
    assert on_time.due(9.0) == []  # the same renew on time keeps the lease

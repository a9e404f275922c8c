"""Which gateway of a site reads which device: leases agreed through the MQTT broker.

Pure bookkeeping, no I/O: time comes in as ``now`` (monotonic seconds) and what is to be
said goes out as :class:`Outgoing` values; ``battery_hawk.site.service`` carries them
over MQTT. The protocol (docs/mqtt.md, "Several gateways on one site"):

* Every gateway reports what it hears every ``lease / 3`` s: per device its smoothed
  RSSI and how long ago it heard it (an advertisement, or a successful read; within
  ``HEARD_FOR`` lease periods), plus its view of every lease. Reports are events, never
  retained. Renews and reports that waited in a queue are ignored (``_late``).
* A device's lease lives in *terms*. A *claim* says "I take the device over from term
  T" and, accepted, starts term T + 1 held by the claimant; a *renew* (every
  ``lease / 3`` s) and a *release* name the term they belong to. Every gateway applies
  the messages of one device's lease topic in the order the broker delivers them, which
  is the same for every subscriber of one broker, with rules that ignore time: a claim
  is accepted only if it builds on the newest term the gateway knows (or a newer one),
  so of two claims racing over term T the first wins everywhere, and a renew or release
  of an older term is ignored everywhere. The views therefore agree.
* Time only decides *when* a gateway says something. A lease is free when it was
  released, when its holder's Last Will (``offline``) came, or when no renew was seen
  for ``GRACE`` lease periods. A free lease is claimed by the gateway that hears the
  device best; the n-th best waits ``n * RANK_STEP`` lease periods, so the best claims
  first and a silent best does not strand the device.
* A holder reads only while its own renews come back from the broker: one not
  confirmed for a whole lease period (broker away, network cut) stops reading, before
  any other gateway may claim (``GRACE`` > 1). A gateway whose own reports stop coming
  back claims nothing: to it every lease looks free, and its claim would arrive stale.
* A holder releases a device another gateway has heard ``handover_db`` better for a
  lease period, or one it has not heard for a lease period while another hears it; so
  in a steady site ownership never changes.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "GRACE",
    "RANK_STEP",
    "Action",
    "Heard",
    "LeaseMessage",
    "LeaseView",
    "Ownership",
    "Report",
]

GRACE = 1.25  # lease periods without a renew after which others consider a lease free
RANK_STEP = 0.5  # lease periods the n-th best candidate waits per better one
HEARD_FOR = 3.0  # lease periods a gateway counts as hearing a device after it last did
# (a busy gateway's scanner pauses for every connection: it may hear a device rarely)
LIVE = 1.5  # lease periods after its last report a gateway no longer counts as a candidate
ECHO = 0.75  # lease periods without our own report coming back after which we do not claim
SMOOTHING = 0.3  # weight of a new RSSI sample in the moving average
NO_SIGNAL = -127.0  # dBm assumed for a device read but never heard advertising


class Action(StrEnum):
    CLAIM = "claim"
    RENEW = "renew"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Heard:
    """A device as one gateway hears it: smoothed RSSI (dBm, None if only read) and age (s)."""

    rssi: float | None
    age: float


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One gateway's view of a lease: the term and its holder (None: released or unheld)."""

    term: int
    holder: str | None


@dataclass(frozen=True, slots=True)
class Report:
    """What a gateway hears and serves (its configured devices) and its view of leases."""

    gateway: str
    heard: Mapping[str, Heard]
    serves: frozenset[str]
    leases: Mapping[str, LeaseView] = field(default_factory=dict)
    origin: str = ""  # the sending process (a random id) ...
    sent: float = 0.0  # ... and its monotonic clock when it sent the report


@dataclass(frozen=True, slots=True)
class LeaseMessage:
    """One message on a device's lease topic.

    ``term`` is the term the message belongs to: for a claim the term it takes over
    from, for a renew or release the term held. ``token`` lets the sender recognise its
    own message when the broker echoes it (unique per process and message); ``sent`` is
    the sender's monotonic clock when it sent the message, which lets every receiver
    tell a message that waited in a queue (see ``Ownership._late``).
    """

    device_id: str
    gateway: str
    action: Action
    term: int
    token: str = ""
    sent: float = 0.0

    @property
    def origin(self) -> str:
        return self.token.split("-", 1)[0]


@dataclass(slots=True)
class _Lease:
    term: int = 0
    holder: str | None = None
    seen: float | None = None  # when the holder last claimed or renewed (our clock)
    free_since: float | None = None  # when it was released or its holder went offline


@dataclass(slots=True)
class _Signal:
    rssi: float | None = None
    at: float | None = None


@dataclass(slots=True)
class _Gateway:
    report: Report
    at: float
    since: dict[str, float] = field(default_factory=dict)  # device -> reported without a break


class Ownership:
    """One gateway's view of the site's leases, and what it must say next."""

    def __init__(self, gateway_id: str, lease: float, devices: Iterable[str] = (), *,
                 handover_db: float = 10.0) -> None:
        if lease <= 0:
            raise ValueError("lease must be a positive number of seconds")
        self.gateway_id = gateway_id
        self.lease = lease
        self.handover_db = handover_db
        self._devices: set[str] = set(devices)
        self._leases: dict[str, _Lease] = {}
        self._signals: dict[str, _Signal] = {}
        self._gateways: dict[str, _Gateway] = {}
        self._offline: dict[str, float] = {}  # gateway -> when its offline status came
        self._sent: dict[str, float] = {}  # our tokens not yet echoed -> when sent
        self._confirmed: dict[str, float] = {}  # device -> when our renew/claim came back
        self._last_said: dict[str, float] = {}  # device -> when we last claimed/renewed
        self._released: set[str] = set()  # released by us, echo not yet seen
        self._lost: dict[str, float] = {}  # device -> when we released it as lost
        self._nonce = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._connected_since: float | None = None
        self._settle_until = 0.0
        self._echoed_at: float | None = None  # when our last report came back
        self._transit: dict[str, float] = {}  # origin -> least (receipt - sent) seen
        self.changes = 0  # accepted claims: how often some device changed hands

    # ---- configuration and connection ------------------------------------------------

    @property
    def devices(self) -> frozenset[str]:
        return frozenset(self._devices)

    def set_devices(self, devices: Iterable[str]) -> None:
        """The configured devices (a reload); one no longer configured is released."""
        self._devices = set(devices)

    def connected(self, now: float) -> None:
        """A broker session began. If our own reports stopped coming back for longer than
        a blip (the link may have been dead long before the client noticed), the lease
        views are stale: forget them and only listen for ``GRACE`` lease periods."""
        quiet = float("inf") if self._echoed_at is None else now - self._echoed_at
        if quiet > ECHO * self.lease:
            # holders may have changed unseen; terms and holders are learnt again from
            # renews and reports before we say anything
            self._leases.clear()
            self._confirmed.clear()
            self._released.clear()
            self._settle_until = now + GRACE * self.lease
        self._connected_since = now

    def disconnected(self, now: float) -> None:
        self._connected_since = None

    @property
    def is_connected(self) -> bool:
        return self._connected_since is not None

    # ---- what this gateway hears -----------------------------------------------------

    def heard(self, device_id: str, rssi: float | None, now: float) -> None:
        """An advertisement of a device (rssi in dBm), or a successful read (rssi None)."""
        signal = self._signals.setdefault(device_id, _Signal())
        if rssi is not None:
            signal.rssi = rssi if signal.rssi is None else (
                (1 - SMOOTHING) * signal.rssi + SMOOTHING * rssi)
        signal.at = now

    def report(self, now: float) -> Report:
        """Our report: configured devices heard lately (HEARD_FOR), and lease views.

        While we settle (just connected) we report hearing nothing, so no owner hands a
        device to us before we may claim it.
        """
        heard = {did: Heard(None if s.rssi is None else round(s.rssi, 1), round(now - s.at, 2))
                 for did, s in self._signals.items()
                 if s.at is not None and did in self._devices and now >= self._settle_until
                 and self._own_signal(did, now) is not None}
        leases = {did: LeaseView(lease.term, lease.holder) for did, lease in self._leases.items()
                  if did in self._devices and lease.term > 0}
        return Report(self.gateway_id, heard, frozenset(self._devices), leases,
                      self._nonce, now)

    # ---- what other gateways say -----------------------------------------------------

    def on_report(self, report: Report, now: float) -> None:
        if self._late(report.origin, report.sent, now):
            return  # it waited in a queue (its sender was cut off): old news
        if report.gateway == self.gateway_id:
            self._echoed_at = now  # our own report came back: the broker hears us
            return
        before = self._gateways.get(report.gateway)
        since = {did: before.since.get(did, now) if before is not None else now
                 for did in report.heard}
        self._gateways[report.gateway] = _Gateway(report, now, since)
        self._offline.pop(report.gateway, None)
        for did, view in report.leases.items():
            lease = self._leases.setdefault(did, _Lease())
            if view.term > lease.term:  # we missed messages (joined late): catch up
                self._adopt(lease, view.term, view.holder, now)

    def on_status(self, gateway: str, online: bool, now: float) -> None:
        """A gateway's retained status: ``offline`` (its Last Will or a clean stop)."""
        if gateway == self.gateway_id:
            return
        if online:
            self._offline.pop(gateway, None)
            return
        self._offline[gateway] = now
        self._gateways.pop(gateway, None)
        for lease in self._leases.values():
            if lease.holder == gateway and lease.free_since is None:
                lease.free_since = now

    def on_lease(self, message: LeaseMessage, now: float) -> None:
        """Apply one lease message, in the broker's order (the same for every gateway)."""
        lease = self._leases.setdefault(message.device_id, _Lease())
        mine = message.gateway == self.gateway_id
        fresh = mine and self._fresh(message.token, now)
        if message.action is Action.CLAIM:
            if message.term < lease.term:
                return  # built on an older term: another claim came first
            self.changes += 1
            self._adopt(lease, message.term + 1, message.gateway, now)
        elif message.action is Action.RENEW:
            if self._late(message.origin, message.sent, now):
                return  # a renew that waited in a queue says nothing about now
            if message.term > lease.term:
                self._adopt(lease, message.term, message.gateway, now)
            elif message.term == lease.term and lease.holder == message.gateway:
                lease.seen, lease.free_since = now, None
            else:
                return
        else:
            if message.term > lease.term or (
                    message.term == lease.term and lease.holder == message.gateway):
                lease.term, lease.holder, lease.seen = message.term, None, None
                lease.free_since = now
                self._released.discard(message.device_id)
            return
        if fresh:
            self._confirmed[message.device_id] = now
            self._released.discard(message.device_id)

    def _adopt(self, lease: _Lease, term: int, holder: str | None, now: float) -> None:
        lease.term, lease.holder = term, holder
        lease.seen = now if holder is not None else None
        lease.free_since = None if holder is not None else now
        if holder is not None and holder in self._offline:
            lease.free_since = now

    def _late(self, origin: str, sent: float, now: float) -> bool:
        """Whether a message waited in a queue: its transit (our clock at receipt minus
        the sender's at sending, which differ by a constant per sending process) exceeds
        the least transit seen from that process by more than a renew round.

        Only renews and reports are judged so: they change no term or holder, so
        receivers that judge one differently still agree on every lease.
        """
        if not origin:
            return False
        transit = now - sent
        least = self._transit.get(origin)
        if least is None or transit < least:
            self._transit[origin] = least = transit
        return transit - least > self.lease / 3

    def _fresh(self, token: str, now: float) -> bool:
        """Whether our own message came back within a renew round (not a stale queued one)."""
        sent = self._sent.pop(token, None)
        return sent is not None and now - sent <= self.lease / 2

    # ---- queries ---------------------------------------------------------------------

    def owns(self, device_id: str, now: float) -> bool:
        """Whether this gateway may read the device now."""
        lease = self._leases.get(device_id)
        confirmed = self._confirmed.get(device_id)
        return (lease is not None and lease.holder == self.gateway_id
                and confirmed is not None and now - confirmed < self.lease
                and device_id not in self._released and self.is_connected)

    def owner(self, device_id: str) -> str | None:
        """The holder of the device's newest term as this gateway knows it."""
        lease = self._leases.get(device_id)
        return None if lease is None else lease.holder

    def served_elsewhere(self, device_id: str, now: float) -> bool:
        """Whether another live gateway serves (has configured) the device."""
        return any(device_id in g.report.serves for name, g in self._gateways.items()
                   if self._live(name, g, now))

    def owned(self, now: float) -> set[str]:
        return {did for did in self._leases if self.owns(did, now)}

    def _live(self, name: str, gateway: _Gateway, now: float) -> bool:
        return name not in self._offline and now - gateway.at <= LIVE * self.lease

    def _free(self, lease: _Lease, now: float) -> float | None:
        """When the lease became free, or None while it is held."""
        if lease.holder is None:
            return lease.free_since if lease.free_since is not None else 0.0
        if lease.free_since is not None:
            return lease.free_since
        if lease.seen is None or now - lease.seen >= GRACE * self.lease:
            return (lease.seen or 0.0) + GRACE * self.lease
        return None

    def candidates(self, device_id: str, now: float) -> list[tuple[str, float]]:
        """Gateways that hear the device now, best first: (gateway, RSSI in dBm)."""
        found: list[tuple[str, float]] = []
        own = self._own_signal(device_id, now)
        if own is not None and device_id in self._devices:
            found.append((self.gateway_id, own))
        for name, gateway in self._gateways.items():
            heard = gateway.report.heard.get(device_id)
            if heard is None or not self._live(name, gateway, now) \
                    or heard.age + now - gateway.at > HEARD_FOR * self.lease:
                continue
            found.append((name, NO_SIGNAL if heard.rssi is None else heard.rssi))
        found.sort(key=lambda c: (-c[1], c[0]))
        return found

    def _own_signal(self, device_id: str, now: float, within: float = HEARD_FOR
                    ) -> float | None:
        """Our smoothed RSSI of a device heard within ``within`` lease periods (and since
        we last gave it up as lost), else None."""
        signal = self._signals.get(device_id)
        if signal is None or signal.at is None or now - signal.at > within * self.lease \
                or signal.at <= self._lost.get(device_id, -1e18):
            return None
        return NO_SIGNAL if signal.rssi is None else signal.rssi

    # ---- what to say now ---------------------------------------------------------------

    def due(self, now: float) -> list[LeaseMessage]:
        """The claims, renews and releases to publish now (each remembered as sent)."""
        if not self.is_connected:
            return []
        settling = now < self._settle_until  # then only keep what we surely hold
        out: list[LeaseMessage] = []
        for did in sorted(self._devices | set(self._leases)):
            if settling and not self.owns(did, now):
                continue
            message = self._decide(did, now)
            if message is not None:
                out.append(message)
        return out

    def release_all(self, now: float) -> list[LeaseMessage]:
        """Releases of every lease held (a clean stop): others take over at once."""
        out = []
        for did, lease in sorted(self._leases.items()):
            if lease.holder == self.gateway_id and did not in self._released:
                out.append(self._say(did, Action.RELEASE, lease.term, now))
        return out

    def _decide(self, did: str, now: float) -> LeaseMessage | None:
        lease = self._leases.setdefault(did, _Lease())
        if lease.holder == self.gateway_id and did not in self._released:
            if self._should_release(did, now):
                return self._say(did, Action.RELEASE, lease.term, now)
            if now - self._last_said.get(did, -1e18) >= self.lease / 3:
                return self._say(did, Action.RENEW, lease.term, now)
            return None
        if did not in self._devices or did in self._released:
            return None
        free_since = self._free(lease, now)
        if free_since is None:
            return None
        expired_holder = lease.holder
        ranked = [name for name, _ in self.candidates(did, now) if name != expired_holder]
        if self.gateway_id not in ranked:
            return None
        rank = ranked.index(self.gateway_id)
        if now < free_since + rank * RANK_STEP * self.lease:
            return None
        if now - self._last_said.get(did, -1e18) < RANK_STEP * self.lease:
            return None  # our last claim has not come back yet
        if self._echoed_at is None or now - self._echoed_at > ECHO * self.lease:
            # our reports do not come back: the link may be dead without our knowing,
            # and a lease that looks free may only look so from here; a claim queued
            # now would arrive stale when the link returns
            return None
        return self._say(did, Action.CLAIM, lease.term, now)

    def _should_release(self, did: str, now: float) -> bool:
        if did not in self._devices:
            return True
        # a gateway only counts once it has reported the device for a lease period: a
        # stray report (one queued while it was cut off) does not move a device
        others = [(name, rssi) for name, rssi in self.candidates(did, now)
                  if name != self.gateway_id
                  and now - self._gateways[name].since.get(did, now) >= self.lease]
        if not others:
            return False
        if self._own_signal(did, now, within=1.0) is None:
            # lost: not heard (nor read) for a lease period while another hears it; we
            # neither claim nor report it again until we hear it again
            self._lost[did] = now
            return True
        own = self._own_signal(did, now)
        return own is not None and others[0][1] >= own + self.handover_db

    def _say(self, did: str, action: Action, term: int, now: float) -> LeaseMessage:
        token = f"{self._nonce}-{next(self._counter)}"
        self._sent[token] = now
        for old in [t for t, at in self._sent.items() if now - at > self.lease]:
            del self._sent[old]
        if action is Action.RELEASE:
            self._released.add(did)
            self._confirmed.pop(did, None)
        else:
            self._last_said[did] = now
        return LeaseMessage(did, self.gateway_id, action, term, token, now)

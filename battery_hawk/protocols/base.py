"""What every device driver declares: how it is talked to, and a pure decoder."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum
from typing import ClassVar

from battery_hawk.errors import DecodeError, NotAReading
from battery_hawk.models import Advertisement, Reading

__all__ = ["Driver", "Mode", "uuid16"]


def uuid16(short: int) -> str:
    """A 16-bit SIG UUID expanded into the Bluetooth base UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


class Mode(StrEnum):
    """How readings arrive from a family of devices."""

    PASSIVE = "passive"  # in advertisements; no connection (decode(advert_payload(adv)))
    POLL = "poll"  # write poll_command() to write_uuid; the reply is notified on notify_uuid
    NOTIFY = "notify"  # subscribe to notify_uuid; the device streams frames unasked
    READ = "read"  # read read_uuid on every poll


class Driver(ABC):
    """One device family. Instances hold the (possibly overridden) key; all methods are pure."""

    family: ClassVar[str]
    model: ClassVar[str]
    manufacturer: ClassVar[str]
    mode: ClassVar[Mode]
    service_uuid: ClassVar[str | None] = None
    write_uuid: ClassVar[str | None] = None
    notify_uuid: ClassVar[str | None] = None
    read_uuid: ClassVar[str | None] = None
    requires_key: ClassVar[bool] = False
    default_key: ClassVar[bytes | None] = None
    # The Reading fields this family's advertisements carry (decode_advert); () if none.
    advert_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, key: bytes | None = None) -> None:
        if key is None:
            key = self.default_key
        if self.requires_key and key is None:
            raise ValueError(f"{self.family} needs a key")
        if key is not None and len(key) != 16:
            raise ValueError(f"{self.family} key must be 16 bytes, got {len(key)}")
        self.key = key

    @classmethod
    def recognise(cls, adv: Advertisement) -> bool:
        """Whether an advertisement looks like this family (name, manufacturer id, UUIDs)."""
        return cls.match(adv) is not None

    @classmethod
    @abstractmethod
    def match(cls, adv: Advertisement) -> str | None:
        """Why an advertisement looks like this family (e.g. "name 'BM6'"), or None."""

    @abstractmethod
    def decode(self, frame: bytes) -> Reading:
        """Decode one frame; raise DecodeError (NotAReading for frames to skip)."""

    def poll_command(self) -> bytes:
        """The bytes to write to write_uuid to ask for a reading (POLL mode)."""
        raise NotImplementedError(f"{self.family} is not polled")

    def advert_payload(self, adv: Advertisement) -> bytes:
        """The part of an advertisement decode() takes (PASSIVE mode)."""
        raise DecodeError(f"{self.family} does not read advertisements")

    def decode_advert(self, adv: Advertisement) -> Reading:
        """The reading an advertisement of this unit carries (only ``advert_fields``).

        NotAReading when the advertisement carries none (another half of an alternation,
        or a family whose adverts are not decoded); DecodeError when it is garbled.
        """
        raise NotAReading(f"{self.family} advertisements carry no reading")

    def advert_decrypts(self, adv: Advertisement) -> bool:
        """Whether the advertisement carries a reading this driver decodes (under its key)."""
        try:
            self.decode_advert(adv)
        except DecodeError:
            return False
        return True

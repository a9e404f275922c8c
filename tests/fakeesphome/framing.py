"""The server side of ESPHome's native API frames: plaintext and Noise.

Facts (read from aioesphomeapi's client, aioesphomeapi/_frame_helper/plain_text.py and
noise.py, and ESPHome's api_frame_helper.cpp):

- plaintext: a frame is varint 0x00, varint payload length, varint message type, payload;
- Noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256, prologue ``NoiseAPIInit\\0\\0``): a frame
  is 0x01, 2-byte big-endian length, body. The client opens with an empty frame (its
  hello) and a frame of 0x00 + its handshake message; the server answers with a frame of
  0x01 + its name + 0x00 + its MAC + 0x00, then 0x00 + its handshake message, or 0x01 +
  a reason ("Handshake MAC failure" for a wrong key). Afterwards each body is encrypted
  and holds a 2-byte type, a 2-byte length and the payload.
"""

from __future__ import annotations

import asyncio
import struct

from cryptography.exceptions import InvalidTag
from noise.connection import NoiseConnection

__all__ = ["FrameError", "NoiseServerFramer", "PlainServerFramer", "ServerFramer"]

NOISE_PROTOCOL = b"Noise_NNpsk0_25519_ChaChaPoly_SHA256"
PROLOGUE = b"NoiseAPIInit\x00\x00"
_TYPE_LEN = struct.Struct(">HH")


class FrameError(Exception):
    """The peer sent something that is no frame of this protocol; the server hangs up."""


async def _read_varint(reader: asyncio.StreamReader) -> int:
    result, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result
        shift += 7
        if shift > 35:
            raise FrameError("varint too long")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class ServerFramer:
    """Reads (type, payload) from and writes them to one client."""

    async def handshake(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        """Whatever the protocol needs before the first message."""

    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        raise NotImplementedError

    def encode(self, msg_type: int, payload: bytes) -> bytes:
        raise NotImplementedError


class PlainServerFramer(ServerFramer):
    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        preamble = (await reader.readexactly(1))[0]
        if preamble != 0x00:
            raise FrameError(f"preamble {preamble:#x}: the client speaks Noise")
        length = await _read_varint(reader)
        msg_type = await _read_varint(reader)
        return msg_type, await reader.readexactly(length) if length else b""

    def encode(self, msg_type: int, payload: bytes) -> bytes:
        return b"\x00" + _varint(len(payload)) + _varint(msg_type) + payload


class NoiseServerFramer(ServerFramer):
    """The responder side; psk is the raw 32-byte key."""

    def __init__(self, psk: bytes, name: str, mac: str) -> None:
        self._psk = psk
        self._name = name
        self._mac = mac
        self._proto: NoiseConnection | None = None
        self.refused_key = False  # the last handshake failed on the key

    @staticmethod
    async def _frame(reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(3)
        if header[0] != 0x01:
            raise FrameError(f"indicator {header[0]:#x}: the client speaks plaintext")
        return await reader.readexactly(header[1] << 8 | header[2])

    @staticmethod
    def _wrap(body: bytes) -> bytes:
        return bytes((0x01, len(body) >> 8 & 0xFF, len(body) & 0xFF)) + body

    async def handshake(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            await self._frame(reader)  # the client's hello: an empty frame
        except FrameError:
            # what ESPHome answers a plaintext client: a Noise frame saying why
            writer.write(self._wrap(b"\x01Bad indicator byte"))
            await writer.drain()
            raise
        writer.write(self._wrap(b"\x01" + self._name.encode() + b"\x00"
                                + self._mac.encode() + b"\x00"))
        message = await self._frame(reader)
        if not message or message[0] != 0x00:
            raise FrameError("handshake frame without its 0x00 marker")
        proto = NoiseConnection.from_name(NOISE_PROTOCOL)
        proto.set_as_responder()
        proto.set_psks(self._psk)
        proto.set_prologue(PROLOGUE)
        proto.start_handshake()
        try:
            proto.read_message(message[1:])
        except InvalidTag:
            self.refused_key = True
            writer.write(self._wrap(b"\x01Handshake MAC failure"))
            await writer.drain()
            raise FrameError("wrong encryption key") from None
        writer.write(self._wrap(b"\x00" + bytes(proto.write_message())))
        await writer.drain()
        self._proto = proto

    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        assert self._proto is not None
        body = await self._frame(reader)
        try:
            plain = bytes(self._proto.decrypt(body))
        except InvalidTag as exc:
            raise FrameError("a frame that does not decrypt") from exc
        msg_type, length = _TYPE_LEN.unpack_from(plain)
        return msg_type, plain[4:4 + length]

    def encode(self, msg_type: int, payload: bytes) -> bytes:
        assert self._proto is not None
        body = self._proto.encrypt(_TYPE_LEN.pack(msg_type, len(payload)) + payload)
        return self._wrap(bytes(body))

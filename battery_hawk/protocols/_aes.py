"""AES-128-CBC with an all-zero IV, the way the Leagend family (BM2/BM6/BM7) uses it.

Every notification and every written command is its own CBC message with a zero IV, so
a single 16-byte block is plain ECB. The ECB contexts are created once per key and
reused: building a Cipher per frame costs more than decrypting it. The contexts keep no
state between whole blocks, but they are not thread-safe: one instance per thread.
The cipher is pycryptodome's (``Crypto.Cipher.AES``), the AES library victron-ble already
needs: one AES library in the process, not two (`cryptography` beside it cost about
9 MiB of resident memory). It is imported when the first context is made, so a daemon
without Leagend devices does not load it for them.
"""

from __future__ import annotations

from battery_hawk.errors import DecodeError

__all__ = ["BLOCK", "ZeroIvCbc"]

BLOCK = 16


class ZeroIvCbc:
    """Encrypts and decrypts whole-block messages with AES-CBC and a zero IV."""

    __slots__ = ("_dec", "_enc")

    def __init__(self, key: bytes) -> None:
        from Crypto.Cipher import AES

        cipher = AES.new(bytes(key), AES.MODE_ECB)  # ECB keeps no state between calls
        self._enc = cipher.encrypt
        self._dec = cipher.decrypt

    def decrypt(self, data: bytes) -> bytes:
        """Plaintext of a message; DecodeError unless it is a whole number of blocks."""
        size = len(data)
        if size == BLOCK:
            return self._dec(data)
        if size == 0 or size % BLOCK:
            raise DecodeError(f"encrypted frame must be a multiple of 16 bytes, got {size}")
        plain = self._dec(bytes(data))
        # CBC: P[i] = D(C[i]) xor C[i-1], with C[-1] = IV = zeros.
        chain = bytes(BLOCK) + bytes(data[:-BLOCK])
        return (int.from_bytes(plain) ^ int.from_bytes(chain)).to_bytes(size)

    def encrypt(self, plain: bytes) -> bytes:
        """Ciphertext of a message, zero-padded to whole blocks as the devices expect."""
        size = -(-max(len(plain), 1) // BLOCK) * BLOCK
        padded = bytes(plain).ljust(size, b"\x00")
        if size == BLOCK:
            return self._enc(padded)
        out = bytearray()
        prev = bytes(BLOCK)
        for i in range(0, size, BLOCK):
            block = (int.from_bytes(padded[i : i + BLOCK]) ^ int.from_bytes(prev)).to_bytes(BLOCK)
            prev = self._enc(block)
            out += prev
        return bytes(out)

"""Trace ids: UUIDv7 (RFC 9562), time-ordered, from the OS CSPRNG drawn in blocks."""

from __future__ import annotations

import os
import threading


class _Entropy(threading.local):
    """Random bytes drawn from the OS a few KiB at a time, per thread.

    One ``getrandom`` call per trace id was measurable in the writer (a syscall is
    costly in a VM); a refill every ~400 ids is not. Still the OS CSPRNG's bytes.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the bytes drawn so far."""
        self.pool = b""
        self.pos = 0

    def take10(self) -> int:
        pos = self.pos
        if pos + 10 > len(self.pool):
            self.pool, pos = os.urandom(4096), 0
        self.pos = pos + 10
        return int.from_bytes(self.pool[pos : pos + 10], "big")


_entropy = _Entropy()
# A forked child must not hand out the parent's remaining bytes (equal trace ids).
os.register_at_fork(after_in_child=_entropy.reset)


def uuid7(unix_ns: int) -> str:
    """A UUIDv7 (RFC 9562) for the given time: time-ordered, 74 random bits."""
    ms = unix_ns // 1_000_000
    rand = _entropy.take10()
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

"""Request limits per API key, per user and per client address: fixed one-minute windows, in Redis when
``REDIS_URL`` is set (shared by every gateway replica), in memory otherwise.

Besides counting, a limiter takes back a hit (``forgive``: the sign-in throttle counts an attempt before the
password hash is checked and takes it back when it succeeds) and remembers keys for a while (``remember``: the
addresses a user signed in from)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

Clock = Callable[[], float]


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> float | None:
        """Count one for ``key`` in this window: None while the count is within ``limit``; else the seconds until
        the window resets."""
        ...

    async def forgive(self, key: str) -> None:
        """Take back one hit for ``key`` in this window (never below zero)."""
        ...

    async def remember(self, key: str, seconds: float) -> None:
        """Keep ``key`` for ``seconds``."""
        ...

    async def recalls(self, key: str) -> bool:
        """Whether ``key`` is remembered."""
        ...


#: Keys kept in memory before the old windows (and forgotten remembered keys) are dropped.
_MEMORY_KEYS = 100_000


class MemoryLimiter:
    def __init__(self, window: float = 60.0, clock: Clock = time.time) -> None:
        self.window = window
        self.clock = clock  # tests move it instead of waiting for a window to pass
        self._counts: dict[tuple[str, int], int] = {}
        self._remembered: dict[str, float] = {}

    async def hit(self, key: str, limit: int) -> float | None:
        now = self.clock()
        slot = int(now // self.window)
        if len(self._counts) > _MEMORY_KEYS:
            self._counts = {k: v for k, v in self._counts.items() if k[1] == slot}
        count = self._counts.get((key, slot), 0) + 1
        self._counts[(key, slot)] = count
        return None if count <= limit else math.ceil((slot + 1) * self.window - now)

    async def forgive(self, key: str) -> None:
        slot = int(self.clock() // self.window)
        count = self._counts.get((key, slot), 0)
        if count > 0:
            self._counts[(key, slot)] = count - 1

    async def remember(self, key: str, seconds: float) -> None:
        now = self.clock()
        if len(self._remembered) > _MEMORY_KEYS:
            self._remembered = {k: until for k, until in self._remembered.items() if until > now}
            if len(self._remembered) > _MEMORY_KEYS:  # a flood of distinct keys: start over rather than grow
                self._remembered.clear()
        self._remembered[key] = now + seconds

    async def recalls(self, key: str) -> bool:
        until = self._remembered.get(key)
        return until is not None and until > self.clock()


#: Takes back one hit without going below zero or making a key that has none (a plain DECR would).
_FORGIVE = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisLimiter:
    def __init__(self, client: Any, window: int = 60, clock: Clock = time.time, prefix: str = "ratelimit:") -> None:
        self.client = client
        self.window = window
        self.clock = clock
        self.prefix = prefix

    def _name(self, key: str, slot: int) -> str:
        return f"{self.prefix}{key}:{slot}"

    async def hit(self, key: str, limit: int) -> float | None:
        now = self.clock()
        slot = int(now // self.window)
        name = self._name(key, slot)
        async with self.client.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(name).expire(name, self.window * 2).execute()
        return None if int(count) <= limit else math.ceil((slot + 1) * self.window - now)

    async def forgive(self, key: str) -> None:
        await self.client.eval(_FORGIVE, 1, self._name(key, int(self.clock() // self.window)))

    async def remember(self, key: str, seconds: float) -> None:
        await self.client.set(f"{self.prefix}remembered:{key}", b"1", ex=max(1, math.ceil(seconds)))

    async def recalls(self, key: str) -> bool:
        return bool(await self.client.exists(f"{self.prefix}remembered:{key}"))

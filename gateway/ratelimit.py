"""Request limits per API key and per user: fixed one-minute windows, in Redis when ``REDIS_URL``
is set (shared by every gateway replica), in memory otherwise."""

from __future__ import annotations

import math
import time
from typing import Any, Protocol


class Limiter(Protocol):
    async def hit(self, key: str, limit: int) -> float | None:
        """None while under ``limit``; else the seconds until the window resets."""
        ...


class MemoryLimiter:
    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, limit: int) -> float | None:
        now = time.time()
        slot = int(now // self.window)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] == slot}
        count = self._counts.get((key, slot), 0) + 1
        self._counts[(key, slot)] = count
        return None if count <= limit else math.ceil((slot + 1) * self.window - now)


class RedisLimiter:
    def __init__(self, client: Any, window: int = 60) -> None:
        self.client = client
        self.window = window

    async def hit(self, key: str, limit: int) -> float | None:
        slot = int(time.time() // self.window)
        name = f"ratelimit:{key}:{slot}"
        async with self.client.pipeline(transaction=True) as pipe:
            count, _ = await pipe.incr(name).expire(name, self.window * 2).execute()
        return None if int(count) <= limit else math.ceil((slot + 1) * self.window - time.time())

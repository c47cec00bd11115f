"""Where cached upstream responses live: process memory (LRU) or Redis, shared by workers."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["CacheBackend", "FallbackBackend", "MemoryBackend", "RedisBackend"]

logger = logging.getLogger("sessiongraph.cache")


class CacheBackend(Protocol):
    @property
    def name(self) -> str: ...

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str]) -> None: ...

    async def invalidate(self, tags: Iterable[str]) -> int: ...

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store `value` only if `key` holds nothing; False when it already did."""
        ...

    async def try_lock(self, key: str, ttl: float) -> bool:
        """Claim the right to fill `key`; False while another process is filling it."""
        ...

    async def unlock(self, key: str) -> None: ...

    async def locked(self, key: str) -> bool: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """An LRU bounded by entry count and total bytes; expired entries go first when read."""

    name = "memory"

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes, tuple[str, ...]]] = OrderedDict()
        self._tagged: defaultdict[str, set[str]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value, _ = found
        if expires <= time.monotonic():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str]) -> None:
        if len(value) > self.max_bytes:
            return
        self._drop(key)
        tag_tuple = tuple(tags)
        self._entries[key] = (time.monotonic() + ttl, value, tag_tuple)
        self.bytes += len(value)
        for tag in tag_tuple:
            self._tagged[tag].add(key)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def invalidate(self, tags: Iterable[str]) -> int:
        keys = {key for tag in tags for key in self._tagged.pop(tag, ())}
        for key in keys:
            self._drop(key)
        return len(keys)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        # No await between the look-up and the store: no other task can come in between.
        if await self.get(key) is not None:
            return False
        await self.set(key, value, ttl, ())
        return True

    async def try_lock(self, key: str, ttl: float) -> bool:
        return True  # one process: its own single-flight already makes fills unique

    async def unlock(self, key: str) -> None:
        return None

    async def locked(self, key: str) -> bool:
        return False

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is None:
            return
        self.bytes -= len(found[1])
        for tag in found[2]:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]

    async def close(self) -> None:
        self._entries.clear()
        self._tagged.clear()
        self.bytes = 0


class RedisBackend:
    """Entries as Redis strings with TTLs; tags as sets of keys, so writes can drop reads."""

    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str = "sg:cache:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        client = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return cls(client)

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(self.prefix + key)
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str]) -> None:
        milliseconds = max(1, int(ttl * 1000))
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.set(self.prefix + key, value, px=milliseconds)
            for tag in tags:
                tag_key = f"{self.prefix}tag:{tag}"
                pipe.sadd(tag_key, key)
                pipe.pexpire(tag_key, milliseconds, gt=True)
                pipe.pexpire(tag_key, milliseconds, nx=True)
            await pipe.execute()

    async def invalidate(self, tags: Iterable[str]) -> int:
        dropped = 0
        for tag in tags:
            tag_key = f"{self.prefix}tag:{tag}"
            keys = await self.client.smembers(tag_key)
            if keys:
                names = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
                dropped += await self.client.delete(*(self.prefix + name for name in names))
            await self.client.delete(tag_key)
        return dropped

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        added = await self.client.set(self.prefix + key, value, nx=True, px=max(1, int(ttl * 1000)))
        return bool(added)

    async def try_lock(self, key: str, ttl: float) -> bool:
        claimed = await self.client.set(
            f"{self.prefix}lock:{key}", b"1", nx=True, px=max(1, int(ttl * 1000))
        )
        return bool(claimed)

    async def unlock(self, key: str) -> None:
        await self.client.delete(f"{self.prefix}lock:{key}")

    async def locked(self, key: str) -> bool:
        return bool(await self.client.exists(f"{self.prefix}lock:{key}"))

    async def close(self) -> None:
        await self.client.aclose()


class FallbackBackend:
    """Redis while it answers; process memory while it does not. Never raises to callers."""

    def __init__(
        self, primary: RedisBackend, fallback: MemoryBackend, retry_seconds: float = 5
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_seconds = retry_seconds
        self._down_until = 0.0
        # Invalidations Redis missed while down; replayed before it is trusted again.
        self._pending: set[str] = set()

    @property
    def name(self) -> str:
        return "redis" if self.healthy else "memory (redis unavailable)"

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if self.healthy:
            logger.warning(
                "redis cache unavailable; using process memory",
                extra={"error": type(exc).__name__, "retry_seconds": self.retry_seconds},
            )
        self._down_until = time.monotonic() + self.retry_seconds

    async def _replay(self) -> None:
        if self._pending:
            tags = list(self._pending)
            await self.primary.invalidate(tags)
            self._pending.difference_update(tags)

    async def get(self, key: str) -> bytes | None:
        if self.healthy:
            try:
                await self._replay()
                return await self.primary.get(key)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return await self.fallback.get(key)

    async def set(self, key: str, value: bytes, ttl: float, tags: Iterable[str]) -> None:
        tag_list = list(tags)
        if self.healthy:
            try:
                await self._replay()
                await self.primary.set(key, value, ttl, tag_list)
                return
            except (RedisError, OSError) as exc:
                self._failed(exc)
        await self.fallback.set(key, value, ttl, tag_list)

    async def invalidate(self, tags: Iterable[str]) -> int:
        tag_list = list(tags)
        # Both: entries written to memory during an outage must not outlive the write either.
        dropped = await self.fallback.invalidate(tag_list)
        try:
            dropped += await self.primary.invalidate(tag_list)
        except (RedisError, OSError) as exc:
            self._pending.update(tag_list)
            self._failed(exc)
        return dropped

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        if self.healthy:
            try:
                await self._replay()
                return await self.primary.add(key, value, ttl)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return await self.fallback.add(key, value, ttl)

    async def try_lock(self, key: str, ttl: float) -> bool:
        if not self.healthy:
            return True
        try:
            return await self.primary.try_lock(key, ttl)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return True

    async def unlock(self, key: str) -> None:
        try:
            await self.primary.unlock(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def locked(self, key: str) -> bool:
        if not self.healthy:
            return False
        try:
            return await self.primary.locked(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return False

    async def close(self) -> None:
        await self.fallback.close()
        with contextlib.suppress(RedisError, OSError):
            await self.primary.close()

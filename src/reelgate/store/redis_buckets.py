"""Token buckets in Redis: the same contract as ``SqlStore.take_tokens``, for deployments that
would rather not write a database row per rate-limited request.

Set ``REELGATE_REDIS_URL`` and every rate limit (a token's creates per minute, an upstream
channel's requests per minute) is kept in Redis, shared by every API replica and worker that
points at the same server. One Lua script refills and takes atomically; each bucket is a hash
that expires once it would be full again, so idle keys do not pile up.
"""

from __future__ import annotations

import math
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reelgate.core.errors import ReelgateError

# KEYS[1] bucket; ARGV: wanted, rate (tokens/s), burst, now (s). Returns the tokens taken.
_TAKE = """
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated_at')
local wanted, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local burst, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, updated = burst, now
if b[1] then
  tokens = tonumber(b[1])
  updated = tonumber(b[2])
  if now > updated then
    tokens = math.min(burst, tokens + (now - updated) * rate)
    updated = now
  end
end
local taken = math.floor(math.min(wanted, tokens))
if taken < 0 then taken = 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - taken), 'updated_at', tostring(updated))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return taken
"""


class RateStoreError(ReelgateError):
    """Redis failed; the request may be retried."""

    http_status = 503
    default_code = "rate_store_unavailable"


class RedisBuckets:
    def __init__(self, url: str, *, prefix: str = "reelgate:bucket:") -> None:
        self._redis: Any = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._take = self._redis.register_script(_TAKE)

    async def take_tokens(
        self, key: str, wanted: int, rate: float, burst: float, now: float
    ) -> int:
        """Take up to ``wanted`` tokens from bucket ``key`` (refilled at ``rate``/s up to
        ``burst``); returns how many were taken."""
        if wanted <= 0:
            return 0
        ttl = max(1, math.ceil(burst / rate)) if rate > 0 else 86400
        try:
            taken = await self._take(
                keys=[self._prefix + key], args=[wanted, rate, burst, now, ttl]
            )
        except (RedisError, OSError) as exc:
            raise RateStoreError(f"Redis is unreachable ({type(exc).__name__})") from None
        return int(taken)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise RateStoreError(f"Redis is unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        await self._redis.aclose()

"""Connecting to PostgreSQL, patiently: a database not up yet is waited for, not a crash."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from db import migrate

log = logging.getLogger(__name__)


async def connect(dsn: str, *, retry_for: float = 120.0, min_size: int = 2,
                  max_size: int = 10) -> asyncpg.Pool:
    """A connection pool with the schema migrated; retries while the database is not up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    delay = 0.5
    while True:
        try:
            pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                             command_timeout=30)
            break
        except (TimeoutError, OSError, asyncpg.PostgresError) as e:
            if loop.time() > deadline:
                raise ConnectionError(f"the database is not reachable: {e}") from None
            log.warning("database not reachable (%s); retrying in %.1f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)
    async with pool.acquire() as conn:
        await migrate.apply(conn)
    return pool

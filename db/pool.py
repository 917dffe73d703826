"""Connecting to PostgreSQL, patiently: a database not up yet is waited for, not a crash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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


# What asyncpg and the OS raise when the database is gone (stopped, restarting, network):
# an outage to wait out, not a bug to print a traceback for.
UNREACHABLE = (OSError, TimeoutError, ConnectionError, asyncpg.InterfaceError,
               asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
               asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


def unreachable(error: BaseException) -> bool:
    """Whether the error says the database is not there (rather than a query was wrong)."""
    return isinstance(error, UNREACHABLE)


class Outages:
    """One log line when the database goes and one when it is back, however many tries
    fail between; how many outages and how long in all, for `hotline status`."""

    def __init__(self, what: str, logger: logging.Logger, clock: Callable[[], float]):
        self.what = what
        self.log = logger
        self.clock = clock
        self.down_since: float | None = None
        self.count = 0
        self.down_seconds = 0.0

    def failed(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
            self.count += 1
            self.log.error("the database is unreachable (%s); %s waits for it",
                           str(error) or type(error).__name__, self.what)

    def succeeded(self) -> None:
        if self.down_since is not None:
            lasted = self.clock() - self.down_since
            self.down_seconds += lasted
            self.down_since = None
            self.log.warning("the database is back after %.0f s; %s goes on", lasted,
                             self.what)

    def as_dict(self) -> dict[str, float | int]:
        return {"db_outages": self.count, "db_down_seconds": round(self.down_seconds, 1)}

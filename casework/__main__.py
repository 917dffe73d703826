"""`python -m casework`: the case workflow's scheduled jobs.

Every minute: urge the cases past their deadline (casework.urging), at most once per
working day each, and erase the personal data of cases archived longer ago than the
retention period (casework.retention). Reads DATABASE_URL and HOTLINE_CONFIG (the
`casework:` rules); writes a heartbeat for `hotline status`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import UTC, datetime

import asyncpg

from casework import calendar, progress, retention, urging
from db import dialguard, logsafe, service_status
from db import pool as db_pool
from dialplan import config

log = logging.getLogger("casework")
EVERY_SECONDS = 60


async def tick(pool: asyncpg.Pool, retention_days: int = 0) -> list[int]:
    """One pass of the jobs, on the clock of now; return the ids of the cases urged."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        cal = await calendar.load(conn)
        urged = await urging.run_due_urgings(conn, now, cal)
        erased = await retention.erase_expired(conn, now, retention_days)
        await dialguard.purge(conn, now)  # calls out: the numbers' blind indexes go too
        await progress.purge_attempts(conn, now)  # lookups by phone: the same
        await service_status.beat(conn, "casework", {"last_urged": len(urged),
                                                     "last_erased": len(erased)})
    if urged:
        log.info("urged %d overdue case(s) automatically", len(urged))
    if erased:
        log.info("erased the personal data of %d case(s) past the retention period",
                 len(erased))
    return urged


async def main() -> int:
    try:
        cfg = config.load(os.environ.get("HOTLINE_CONFIG", "config/hotline.yaml"))
        pool = await db_pool.connect(os.environ["DATABASE_URL"])
    except (config.ConfigError, ConnectionError) as e:
        log.error("cannot start: %s", e)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("case workflow jobs running (every %d s)", EVERY_SECONDS)
    while not stop.is_set():
        try:
            await tick(pool, cfg.casework.retention_days)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("jobs not run this time: %s", e)
        try:
            await asyncio.wait_for(stop.wait(), EVERY_SECONDS)
        except TimeoutError:
            pass
    await pool.close()
    return 0


if __name__ == "__main__":
    logsafe.setup()  # stderr, with callers' numbers masked
    sys.exit(asyncio.run(main()))

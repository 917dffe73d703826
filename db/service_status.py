"""Each service's heartbeat (`service_status`): alive, since when, and a few details, for
`hotline status`."""

from __future__ import annotations

import json
import os
from typing import Any

import asyncpg


async def beat(conn: asyncpg.Connection, name: str, details: dict[str, Any]) -> None:
    """Record that the service `name` (this process) is alive, with its details."""
    await conn.execute(
        """INSERT INTO service_status (name, pid, details, updated_at)
           VALUES ($1, $2, $3, now())
           ON CONFLICT (name) DO UPDATE SET pid = EXCLUDED.pid,
             details = EXCLUDED.details, updated_at = now()""",
        name, os.getpid(), json.dumps(details))

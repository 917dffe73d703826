"""Audio attached to cases (voice messages), kept as files beside the database."""

from __future__ import annotations

import uuid

import asyncpg


async def attach(conn: asyncpg.Connection, case_id: int, call_id: uuid.UUID | None, kind: str,
                 file: str, seconds: float | None) -> int:
    """Record that a case has an audio file; return the row id."""
    value: int = await conn.fetchval(
        """INSERT INTO case_recordings (case_id, call_id, kind, file, seconds)
           VALUES ($1, $2, $3, $4, $5) RETURNING id""",
        case_id, call_id, kind, file, seconds,
    )
    return value


async def for_case(conn: asyncpg.Connection, case_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM case_recordings WHERE case_id = $1 ORDER BY created_at", case_id)

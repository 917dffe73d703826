"""The workflow schema itself: the audit trail cannot be edited."""

from __future__ import annotations

import asyncpg
import pytest


async def test_the_audit_trail_is_append_only(conn: asyncpg.Connection) -> None:
    case_id = await conn.fetchval(
        "INSERT INTO cases (case_no, dialled_number, service) VALUES ('1', '12345', 'hotline')"
        " RETURNING id")
    await conn.execute("INSERT INTO case_events (case_id, at, action) VALUES ($1, now(), 'x')",
                       case_id)
    with pytest.raises(asyncpg.RaiseError, match="cannot be changed"):
        await conn.execute("UPDATE case_events SET action = 'y'")
    with pytest.raises(asyncpg.RaiseError, match="cannot be changed"):
        await conn.execute("DELETE FROM case_events")

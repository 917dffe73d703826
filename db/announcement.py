"""The duty supervisor's message to callers: an emergency notice or the after-hours one."""

from __future__ import annotations

from typing import Any

import asyncpg

from db import events

MODES = ("off", "emergency", "after_hours")
MAX_TEXT = 500


async def get(conn: asyncpg.Connection) -> dict[str, Any]:
    row = await conn.fetchrow(
        """SELECT a.mode, a.text, a.set_at, g.display_name FROM announcement a
           LEFT JOIN agents g ON g.id = a.set_by WHERE a.id = 1"""
    )
    if row is None:
        return {"mode": "off", "text": "", "set_by": None, "at": None}
    return {"mode": row["mode"], "text": row["text"], "set_by": row["display_name"],
            "at": row["set_at"].isoformat() if row["set_at"] else None}


async def set_mode(conn: asyncpg.Connection, mode: str, text: str, agent_id: int) -> None:
    """Switch the message on (emergency / after_hours) or off."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    await conn.execute(
        """INSERT INTO announcement (id, mode, text, set_by, set_at) VALUES (1, $1, $2, $3, now())
           ON CONFLICT (id) DO UPDATE SET mode = $1, text = $2, set_by = $3, set_at = now()""",
        mode, text[:MAX_TEXT], agent_id,
    )
    await events.notify(conn, events.ANNOUNCEMENT, mode=mode)

"""The audit trail of a case: who did what and when. Append only (a trigger refuses any
change), and never with a personal field in it: details carry ids, codes and reasons."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg


async def record(conn: asyncpg.Connection, case_id: int, action: str, actor_id: int | None,
                 now: datetime, **detail: Any) -> None:
    """Write one entry of the case's audit trail."""
    await conn.execute(
        "INSERT INTO case_events (case_id, at, actor_id, action, detail) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        case_id, now, actor_id, action, json.dumps(detail, ensure_ascii=False, default=str),
    )


async def trail(conn: asyncpg.Connection, case_id: int) -> list[dict[str, Any]]:
    """A case's audit trail, oldest first, with the actor's login and role."""
    rows = await conn.fetch(
        """SELECT e.id, e.at, e.action, e.detail, a.login, a.display_name, a.role
           FROM case_events e LEFT JOIN agents a ON a.id = e.actor_id
           WHERE e.case_id = $1 ORDER BY e.id""", case_id)
    return [{"at": r["at"].isoformat(), "action": r["action"],
             "detail": json.loads(r["detail"]), "actor": r["login"],
             "actor_name": r["display_name"], "actor_role": r["role"]} for r in rows]

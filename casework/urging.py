"""Automatic urging (催办) and the public-criticism list.

A case whose lead unit is past its deadline with no result and no pending request for
more time is urged by the scheduled job, at most once per working day late, so the count
of urgings measures how long a unit let it slip. A case still not handled after
`criticism_urgings` urgings goes on the public-criticism list of the weekly publication.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from casework import workflow

CN = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Overdue:
    """A case on the public-criticism list."""

    case_id: int
    case_no: str
    title: str
    unit: str
    due_at: datetime
    urgings: int


async def run_due_urgings(conn: asyncpg.Connection, now: datetime,
                          deadlines: workflow.Deadlines) -> list[int]:
    """Urge every overdue case not urged yet this working day; return the ids of the cases
    urged. Units rest on rest days, and so does the job. Safe to run as often as one likes."""
    if not deadlines.is_working_day(now.astimezone(CN).date()):
        return []
    rows = await conn.fetch(
        """SELECT c.id, c.due_at,
                  (SELECT max(u.at) FROM urgings u WHERE u.case_id = c.id
                     AND u.kind = 'auto') AS last_auto
           FROM cases c
           WHERE c.status IN ('assigned', 'accepted') AND c.due_at IS NOT NULL
             AND c.due_at <= $1
             AND NOT EXISTS (SELECT 1 FROM extensions e JOIN assignments a
                               ON a.id = e.assignment_id
                             WHERE a.case_id = c.id AND a.round = c.round
                               AND e.status = 'pending')
           ORDER BY c.due_at""", now)
    urged = []
    for r in rows:
        if r["last_auto"] is not None:
            # Once per working day late: the next urging falls due when the working day
            # after the last one begins (the end of that day, less the day itself).
            next_due = deadlines.add_working_days(r["last_auto"], 1) - timedelta(days=1)
            if now < next_due:
                continue
        try:
            await workflow.urge(conn, r["id"], workflow.SYSTEM, now,
                                note="超过办理期限未反馈结果，系统自动催办")
        except workflow.WorkflowError:
            continue  # its status changed since the query: nothing to urge
        urged.append(r["id"])
    return urged


async def criticism_list(conn: asyncpg.Connection, now: datetime,
                         threshold: int = 2) -> list[Overdue]:
    """Cases still not handled after `threshold` or more urgings, most urged first."""
    rows = await conn.fetch(
        """SELECT c.id, c.case_no, c.title, u.name AS unit, c.due_at, c.urge_count
           FROM cases c JOIN units u ON u.id = c.lead_unit_id
           WHERE c.status IN ('assigned', 'accepted', 'returned') AND c.urge_count >= $1
             AND c.received_at <= $2
           ORDER BY c.urge_count DESC, c.due_at""", threshold, now)
    return [Overdue(r["id"], r["case_no"], r["title"], r["unit"], r["due_at"],
                    r["urge_count"]) for r in rows]

"""Wallboard figures, all computed from the one event log (queue_log) and agent states.

Definitions (docs/wallboard.md):
- offered: ENTERQUEUE events (a caller entered the queue)
- answered: CONNECT events; abandoned: ABANDON events, short ones waited < short_abandon s
- lost: SYSTEMLOST events (calls the system cut, waiting or talking: not abandoned)
- answer rate: answered / offered (GB/T 33358's 人工接通率)
- service level: answered within service_level_seconds (15 s) / answered
- ASA (average speed of answer): mean CONNECT holdtime
- AHT (average handle time): mean talk time of completed calls + mean wrap-up time
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Figures:
    offered: int
    answered: int
    abandoned: int
    short_abandoned: int
    answer_rate: float | None
    service_level: float | None
    asa: float | None
    aht: float | None
    lost: int = 0  # cut by the system (an Asterisk restart), counted apart from abandoned


_FIGURES_SQL = """
WITH ev AS (
    SELECT l.event, l.at, l.agent_id,
           (l.data->>'holdtime')::float AS holdtime,
           (l.data->>'talktime')::float AS talktime,
           (l.data->>'waited')::float AS waited
    FROM queue_log l
    WHERE l.at >= $1 AND l.at < $2 AND ($3::text IS NULL OR l.queue = $3)
), wrap AS (
    -- each wrap-up period: from entering wrap_up to the agent's next state
    SELECT extract(epoch FROM lead(s.at) OVER (PARTITION BY s.agent_id ORDER BY s.at, s.id)
                   - s.at) AS secs, s.state, s.at
    FROM agent_state_log s WHERE s.at >= $1 AND s.at < $2 + interval '1 hour'
)
SELECT
    count(*) FILTER (WHERE event = 'ENTERQUEUE') AS offered,
    count(*) FILTER (WHERE event = 'CONNECT') AS answered,
    count(*) FILTER (WHERE event = 'ABANDON') AS abandoned,
    count(*) FILTER (WHERE event = 'ABANDON' AND waited < $4) AS short_abandoned,
    count(*) FILTER (WHERE event = 'SYSTEMLOST') AS lost,
    count(*) FILTER (WHERE event = 'CONNECT' AND holdtime <= $5) AS within_sl,
    avg(holdtime) FILTER (WHERE event = 'CONNECT') AS asa,
    avg(talktime) FILTER (WHERE event IN ('COMPLETECALLER', 'COMPLETEAGENT')) AS talk,
    (SELECT avg(secs) FROM wrap WHERE state = 'wrap_up' AND at < $2 AND secs IS NOT NULL)
        AS wrap_up
FROM ev
"""


def _figures(row: asyncpg.Record) -> Figures:
    offered, answered = int(row["offered"]), int(row["answered"])
    aht = None
    if row["talk"] is not None:
        aht = round(float(row["talk"]) + float(row["wrap_up"] or 0), 1)
    return Figures(
        offered=offered,
        answered=answered,
        abandoned=int(row["abandoned"]),
        short_abandoned=int(row["short_abandoned"]),
        answer_rate=round(answered / offered, 4) if offered else None,
        service_level=round(int(row["within_sl"]) / answered, 4) if answered else None,
        asa=round(float(row["asa"]), 1) if row["asa"] is not None else None,
        aht=aht,
        lost=int(row["lost"]),
    )


async def figures(conn: asyncpg.Connection, start: datetime, end: datetime,
                  queue: str | None = None, short_abandon: float = 5,
                  service_level_seconds: float = 15) -> Figures:
    """The figures of one period [start, end)."""
    row = await conn.fetchrow(_FIGURES_SQL, start, end, queue, short_abandon,
                              service_level_seconds)
    return _figures(row)


async def day_start(conn: asyncpg.Connection, tz: str = TIMEZONE) -> datetime:
    """Midnight today in the hotline's time zone."""
    value: datetime = await conn.fetchval(
        "SELECT date_trunc('day', now() AT TIME ZONE $1) AT TIME ZONE $1", tz)
    return value


async def intervals(conn: asyncpg.Connection, start: datetime, end: datetime, minutes: int,
                    queue: str | None = None, short_abandon: float = 5,
                    service_level_seconds: float = 15) -> list[dict[str, Any]]:
    """The figures of each interval of `minutes` from start to end, that had any event."""
    if minutes not in (15, 30, 60):
        raise ValueError("intervals are 15, 30 or 60 minutes")
    bins = await conn.fetch(
        """SELECT DISTINCT date_bin(make_interval(mins => $3), at, $1) AS bin FROM queue_log
           WHERE at >= $1 AND at < $2 AND ($4::text IS NULL OR queue = $4) ORDER BY bin""",
        start, end, minutes, queue,
    )
    out = []
    for b in bins:
        bin_start = b["bin"]
        bin_end = await conn.fetchval("SELECT $1::timestamptz + make_interval(mins => $2)",
                                      bin_start, minutes)
        f = await figures(conn, bin_start, min(bin_end, end), queue, short_abandon,
                          service_level_seconds)
        out.append({"start": bin_start.isoformat(), **asdict(f)})
    return out


async def live(conn: asyncpg.Connection) -> dict[str, Any]:
    """Calls waiting and the longest wait per queue, and agents by state, right now."""
    queues = await conn.fetch(
        """SELECT queue, count(*) AS waiting,
                  max(extract(epoch FROM now() - entered_queue_at)) AS longest
           FROM calls WHERE state IN ('waiting', 'offered') GROUP BY queue"""
    )
    states = await conn.fetch(
        "SELECT state, count(*) AS n FROM agents WHERE active AND role = 'agent' GROUP BY state")
    by_state = {s: 0 for s in ("ready", "ringing", "on_call", "wrap_up", "paused", "logged_out")}
    by_state.update({r["state"]: int(r["n"]) for r in states})
    return {
        "queues": {r["queue"]: {"waiting": int(r["waiting"]),
                                "longest_wait": round(float(r["longest"] or 0), 1)}
                   for r in queues},
        "agents": by_state,
    }

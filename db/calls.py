"""Calls and the queue they wait in, kept in PostgreSQL so no caller is lost.

Every transition is one transaction that also writes the queue_log and a notice.
Rows are locked with SKIP LOCKED so two dispatchers never offer the same call twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db import agents, events, worklist

# A call cut by the system (Asterisk restarted under it), not by the caller: its own end
# reason and queue-log event, so figures count it apart from abandoned calls.
SYSTEM_LOST = worklist.SYSTEM_LOST
SYSTEM_LOST_EVENT = "SYSTEMLOST"

# How each strategy orders the ready agents of a queue ($1 = queue id).
_AGENT_ORDER = {
    "longest_idle": "a.idle_since, a.id",
    "ring_all": "a.idle_since, a.id",
    "fewest_calls": """(SELECT count(*) FROM queue_log l WHERE l.agent_id = a.id
                         AND l.event = 'CONNECT' AND l.at >= date_trunc('day', now()))
                       , a.idle_since, a.id""",
    # Round robin with memory: the agents after the last one offered a call, then the rest.
    "round_robin": """a.id <= COALESCE((SELECT last_agent_id FROM queue_round_robin
                                        WHERE queue = $1), 0), a.id""",
}


@dataclass(frozen=True)
class Leg:
    """One agent whose phone is rung for a call."""

    agent_id: int
    phone: str | None
    channel_id: str = ""  # the id the agent leg's channel is created with


@dataclass(frozen=True)
class Offer:
    """A waiting call matched with free agents (one, or all with ring_all), all reserved."""

    call_id: uuid.UUID
    channel_id: str
    queue: str
    legs: tuple[Leg, ...]
    dialled: str = ""  # the hotline number the caller dialled, shown on the agent's phone


async def _log(conn: asyncpg.Connection, event: str, call_id: uuid.UUID | None,
               queue: str | None, agent_id: int | None = None, **data: Any) -> None:
    await conn.execute(
        "INSERT INTO queue_log (call_id, queue, agent_id, event, data) VALUES ($1,$2,$3,$4,$5)",
        call_id, queue, agent_id, event, json.dumps(data),
    )


async def log_event(conn: asyncpg.Connection, event: str, call_id: uuid.UUID | None,
                    queue: str | None, agent_id: int | None = None, **data: Any) -> None:
    """Write one queue_log row (for events outside the transitions below)."""
    await _log(conn, event, call_id, queue, agent_id, **data)


async def create(conn: asyncpg.Connection, channel_id: str, dialled: str, queue: str, *,
                 trunk: str | None = None) -> uuid.UUID:
    """Record a call that has just arrived in the IVR; return its id.

    trunk: the carrier trunk it came in on (None: an agent's phone or a test call)."""
    call_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO calls (id, channel_id, dialled_number, queue, trunk)"
        " VALUES ($1, $2, $3, $4, $5)",
        call_id, channel_id, dialled, queue, trunk,
    )
    return call_id


async def enqueue(conn: asyncpg.Connection, call_id: uuid.UUID, service: str, case_id: int,
                  priority: int = 0) -> None:
    """Put a call in its queue (it keeps this place until served or gone)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET state = 'waiting', service = $2, case_id = $3, priority = $4,
                 entered_queue_at = now() WHERE id = $1 AND state = 'ivr' RETURNING queue""",
            call_id, service, case_id, priority,
        )
        if row is None:
            return
        position = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE queue = $1 AND state = 'waiting'", row["queue"]
        )
        await _log(conn, "ENTERQUEUE", call_id, row["queue"], position=position, service=service,
                   priority=priority)
        await events.notify(conn, events.QUEUE)


def _call_order(priority_weight: int) -> str:
    # Priority ages: one level counts as priority_weight seconds of waiting, so a caller
    # of lower priority who has waited long enough goes before a newer urgent one.
    return (f"c.priority * {int(priority_weight)} "
            "+ extract(epoch FROM now() - c.entered_queue_at) DESC, c.entered_queue_at")


async def claim_next(conn: asyncpg.Connection, queue: str, strategy: str = "longest_idle",
                     priority_weight: int = 60) -> Offer | None:
    """Reserve the next call of the queue and the agent(s) its strategy picks, or None.

    One statement, so one round trip whatever the strategy: the offer, the agents'
    ringing state, both logs and the notices all commit together or not at all (this is
    the hot path of dispatch; see docs/benchmarks.md).
    """
    order = _AGENT_ORDER[strategy]
    limit = "" if strategy == "ring_all" else "LIMIT 1"
    rows = await conn.fetch(
        f"""WITH call AS (
              SELECT c.id, c.channel_id, c.dialled_number FROM calls c
              WHERE c.queue = $1 AND c.state = 'waiting'
              ORDER BY {_call_order(priority_weight)} LIMIT 1 FOR UPDATE SKIP LOCKED
            ), picked AS (
              SELECT a.id, a.phone FROM agents a
              WHERE EXISTS (SELECT 1 FROM call) AND a.state = 'ready' AND a.active
                AND a.role = 'agent' AND a.phone IS NOT NULL
                AND (cardinality(a.queues) = 0 OR $1 = ANY(a.queues))
              ORDER BY {order} {limit} FOR UPDATE OF a SKIP LOCKED
            ), offered AS (
              UPDATE calls SET state = 'offered' WHERE id = (SELECT id FROM call)
                AND EXISTS (SELECT 1 FROM picked) RETURNING id
            ), offers AS (
              -- The agent leg's channel id is chosen here, so dialling needs no write.
              INSERT INTO call_offers (call_id, agent_id, channel_id)
              SELECT o.id, p.id, 'hotline-agent-' || gen_random_uuid()
              FROM offered o, picked p RETURNING agent_id, channel_id
            ), ringing AS (
              UPDATE agents a SET state = 'ringing', reason = NULL, state_since = now()
              FROM offers f WHERE a.id = f.agent_id RETURNING a.id
            ), state_log AS (
              INSERT INTO agent_state_log (agent_id, state) SELECT id, 'ringing' FROM ringing
            ), ring_log AS (
              INSERT INTO queue_log (call_id, queue, agent_id, event)
              SELECT o.id, $1, r.id, 'RINGING' FROM offered o, ringing r
            ), memory AS (
              INSERT INTO queue_round_robin (queue, last_agent_id)
              SELECT $1, f.agent_id FROM offers f WHERE $2
              ON CONFLICT (queue) DO UPDATE SET last_agent_id = EXCLUDED.last_agent_id
            )
            SELECT c.id, c.channel_id, c.dialled_number, p.id AS agent_id, p.phone,
                   f.channel_id AS leg_channel,
                   pg_notify($3, json_build_object('kind', 'agent', 'agent_id', p.id)::text),
                   pg_notify($3, json_build_object('kind', 'offer', 'agent_id', p.id,
                                                   'call_id', c.id::text)::text),
                   pg_notify($3, '{{"kind": "queue"}}')
            FROM call c JOIN offered o ON o.id = c.id CROSS JOIN picked p
            JOIN offers f ON f.agent_id = p.id""",
        queue, strategy == "round_robin", events.CHANNEL,
    )
    if not rows:
        return None
    first = rows[0]
    return Offer(first["id"], first["channel_id"], queue,
                 tuple(Leg(r["agent_id"], r["phone"], r["leg_channel"]) for r in rows),
                 first["dialled_number"])


async def leg_failed(conn: asyncpg.Connection, call_id: uuid.UUID, queue: str, agent_id: int,
                     reason: str, pause: bool) -> bool:
    """One agent's phone was not answered (or could not be dialled).

    With pause (a phone that rang unanswered and the queue's autopause), the agent is
    paused with the reason, as app_queue's autopause does, so calls are not offered to a
    phone nobody picks up; without, the agent is ready again. When no leg is left the
    call goes back to its place in the queue; returns True then.
    """
    async with conn.transaction():
        leg = await conn.fetchrow(
            "DELETE FROM call_offers WHERE call_id = $1 AND agent_id = $2 RETURNING offered_at",
            call_id, agent_id,
        )
        if leg is None:
            return False
        state, why = ("paused", reason) if pause else ("ready", None)
        agent = await conn.fetchrow(
            """UPDATE agents SET state = $2, reason = $3, state_since = now(), after_call = NULL
               WHERE id = $1 AND state = 'ringing' RETURNING after_call""",
            agent_id, state, why,
        )
        if agent is not None:
            await agents.log_state(conn, agent_id, state, why)
        ringtime = await conn.fetchval("SELECT extract(epoch FROM now() - $1::timestamptz)",
                                       leg["offered_at"])
        await _log(conn, "RINGNOANSWER", call_id, queue, agent_id, reason=reason,
                   ringtime=round(float(ringtime), 3))
        if pause and agent is not None:
            await _log(conn, "PAUSE", None, None, agent_id, reason=reason)
        if await conn.fetchval("SELECT count(*) FROM call_offers WHERE call_id = $1", call_id):
            return False
        back = await conn.fetchrow(
            "UPDATE calls SET state = 'waiting' WHERE id = $1 AND state = 'offered' RETURNING id",
            call_id,
        )
        if back is not None:
            await events.notify(conn, events.QUEUE)
        return back is not None


async def connect(conn: asyncpg.Connection, call_id: uuid.UUID, queue: str, agent_id: int,
                  agent_channel: str, bridge_id: str) -> bool:
    """Caller and agent are bridged; False if the call ended in the meantime. The other
    agents rung for it (ring_all) are ready again."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET state = 'connected', answered_at = now(), bridge_id = $2,
                 agent_id = $3, agent_channel_id = $4
               WHERE id = $1 AND state = 'offered'
               RETURNING extract(epoch FROM now() - entered_queue_at) AS hold""",
            call_id, bridge_id, agent_id, agent_channel,
        )
        if row is None:
            return False
        legs = await conn.fetch("DELETE FROM call_offers WHERE call_id = $1 RETURNING *", call_id)
        ringtime = 0.0
        for leg in legs:
            if leg["agent_id"] == agent_id:
                ringtime = float(await conn.fetchval(
                    "SELECT extract(epoch FROM now() - $1::timestamptz)", leg["offered_at"]))
                continue
            other = await conn.fetchrow(
                """UPDATE agents SET state = 'ready', reason = NULL, state_since = now()
                   WHERE id = $1 AND state = 'ringing' RETURNING id""", leg["agent_id"])
            if other is not None:
                await agents.log_state(conn, leg["agent_id"], "ready", "answered_elsewhere")
        await conn.execute(
            "UPDATE agents SET state = 'on_call', reason = NULL, state_since = now() WHERE id = $1",
            agent_id,
        )
        await agents.log_state(conn, agent_id, "on_call", None)
        await conn.execute(
            "UPDATE cases SET agent_id = $2 WHERE id = (SELECT case_id FROM calls WHERE id = $1)",
            call_id, agent_id,
        )
        await _log(conn, "CONNECT", call_id, queue, agent_id,
                   holdtime=round(float(row["hold"]), 3), ringtime=round(ringtime, 3))
        await events.notify(conn, events.CONNECTED, agent_id=agent_id, call_id=str(call_id))
        return True


async def end(conn: asyncpg.Connection, call_id: uuid.UUID, reason: str,
              wrap_up: int = 0) -> None:
    """The call is over (reason: caller_hangup, agent_hangup, ...): record how it ended and
    free its agents (the one who talked goes to wrap-up for wrap_up seconds)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM calls WHERE id = $1 AND state <> 'ended' FOR UPDATE", call_id
        )
        if row is None:
            return
        await conn.execute(
            "UPDATE calls SET state = 'ended', ended_at = now(), end_reason = $2 WHERE id = $1",
            call_id, reason,
        )
        waited = None
        if row["entered_queue_at"] is not None:
            waited = await conn.fetchval(
                "SELECT extract(epoch FROM now() - $1::timestamptz)", row["entered_queue_at"]
            )
        rung = [r["agent_id"] for r in
                await conn.fetch("DELETE FROM call_offers WHERE call_id = $1 RETURNING agent_id",
                                 call_id)]
        if row["state"] in ("waiting", "offered"):
            position = await conn.fetchval(
                """SELECT count(*) FROM calls WHERE queue = $1 AND state IN ('waiting', 'offered')
                   AND entered_queue_at < $2""",
                row["queue"], row["entered_queue_at"],
            )
            event = "CALLBACKFAIL" if reason.startswith("callback_") else (
                "EXITWITHTIMEOUT" if reason.startswith("overflow") else
                SYSTEM_LOST_EVENT if reason == SYSTEM_LOST else "ABANDON")
            await _log(conn, event, call_id, row["queue"], None,
                       position=position + 1, waited=round(float(waited or 0), 3),
                       reason=reason)
            if event == SYSTEM_LOST_EVENT:
                await worklist.add(conn, call_id, "abandoned", reason=SYSTEM_LOST)
            elif event == "ABANDON":
                # Missed calls are called back (national rules): on the worklist, with
                # the reason when the line died rather than the caller hanging up.
                await worklist.add(conn, call_id, "abandoned",
                                   reason=reason if reason in worklist.REASONS else None)
            elif event == "CALLBACKFAIL":
                await worklist.add(conn, call_id, "callback", reason=reason)
        elif row["state"] == "connected":
            talk = await conn.fetchval(
                "SELECT extract(epoch FROM now() - $1::timestamptz)", row["answered_at"]
            )
            hold = await conn.fetchval(
                "SELECT extract(epoch FROM $1::timestamptz - $2::timestamptz)",
                row["answered_at"], row["entered_queue_at"])
            event = "COMPLETEAGENT" if reason == "agent_hangup" else (
                SYSTEM_LOST_EVENT if reason == SYSTEM_LOST else "COMPLETECALLER")
            await _log(conn, event, call_id, row["queue"], row["agent_id"],
                       holdtime=round(float(hold or 0), 3), talktime=round(float(talk), 3))
            if event == SYSTEM_LOST_EVENT:
                # Cut off mid-conversation by the system: the citizen is owed a call back.
                await worklist.add(conn, call_id, "abandoned", reason=SYSTEM_LOST)
        elif row["state"] == "ivr":
            await _log(conn, "IVRHANGUP", call_id, row["queue"], reason=reason)
        freed = list(rung)
        if row["state"] == "connected" and row["agent_id"] is not None:
            freed.append(row["agent_id"])
        for agent_id in freed:
            talked = agent_id == row["agent_id"] and row["state"] == "connected"
            await agents.after_call(conn, agent_id, wrap_up if talked else 0)
        await events.notify(conn, events.CALL_ENDED, call_id=str(call_id),
                            agent_id=row["agent_id"], rung=rung, reason=reason)
        if row["state"] in ("waiting", "offered"):
            await events.notify(conn, events.QUEUE)


async def request_callback(conn: asyncpg.Connection, call_id: uuid.UUID) -> bool:
    """The waiting caller hangs up to be called back: the call keeps its place in line."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET callback_at = now() WHERE id = $1 AND state = 'waiting'
               RETURNING queue, extract(epoch FROM now() - entered_queue_at) AS waited""",
            call_id,
        )
        if row is None:
            return False
        await _log(conn, "CALLBACKREQ", call_id, row["queue"],
                   waited=round(float(row["waited"]), 3))
        await events.notify(conn, events.QUEUE)
        return True


async def set_callback_channel(conn: asyncpg.Connection, call_id: uuid.UUID,
                               channel_id: str) -> None:
    await conn.execute("UPDATE calls SET callback_channel_id = $2 WHERE id = $1",
                       call_id, channel_id)


async def position(conn: asyncpg.Connection, call_id: uuid.UUID,
                   priority_weight: int = 60) -> int | None:
    """The caller's place in line (1 = next), by the same order dispatch uses."""
    value = await conn.fetchval(
        f"""WITH me AS (SELECT queue, priority, entered_queue_at FROM calls
                        WHERE id = $1 AND state = 'waiting')
            SELECT 1 + count(c.id) FILTER (WHERE c.id <> $1) FROM me
            LEFT JOIN calls c ON c.queue = me.queue AND c.state = 'waiting'
              AND c.priority * {int(priority_weight)} - extract(epoch FROM c.entered_queue_at)
                > me.priority * {int(priority_weight)} - extract(epoch FROM me.entered_queue_at)
            GROUP BY me.queue""",
        call_id,
    )
    return int(value) if value is not None else None


async def expected_wait(conn: asyncpg.Connection, queue: str, place: int,
                        default_handle: float = 180) -> float:
    """Seconds a caller at this place may still wait: their place times the recent mean
    handle time (talk + wrap-up), shared among the agents serving the queue."""
    handle = await conn.fetchval(
        """SELECT avg((data->>'talktime')::float) FROM (
             SELECT data FROM queue_log WHERE queue = $1
             AND event IN ('COMPLETECALLER', 'COMPLETEAGENT') ORDER BY at DESC LIMIT 50) t""",
        queue,
    )
    staffed = await conn.fetchval(
        """SELECT count(*) FROM agents WHERE active AND role = 'agent'
           AND state IN ('ready', 'ringing', 'on_call', 'wrap_up')
           AND (cardinality(queues) = 0 OR $1 = ANY(queues))""",
        queue,
    )
    return place * float(handle or default_handle) / max(1, int(staffed))


async def get(conn: asyncpg.Connection, call_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)


async def offers(conn: asyncpg.Connection, call_id: uuid.UUID) -> list[asyncpg.Record]:
    """The agent legs ringing for a call."""
    return await conn.fetch("SELECT * FROM call_offers WHERE call_id = $1", call_id)


async def live(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Calls not ended yet, oldest first (for reconciling with Asterisk)."""
    return await conn.fetch("SELECT * FROM calls WHERE state <> 'ended' ORDER BY arrived_at")


async def waiting(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Calls waiting in any queue, in arrival order."""
    return await conn.fetch(
        """SELECT c.*, extract(epoch FROM now() - c.entered_queue_at) AS waited
           FROM calls c WHERE c.state = 'waiting'
           ORDER BY c.queue, c.entered_queue_at, c.arrived_at"""
    )


def call_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A call as the desk shows it (no personal data)."""
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v else None

    return {
        "call_id": str(row["id"]),
        "dialled_number": row["dialled_number"],
        "service": row["service"],
        "queue": row["queue"],
        "state": row["state"],
        "priority": row["priority"],
        "entered_at": iso(row["entered_queue_at"]),
        "answered_at": iso(row["answered_at"]),
    }

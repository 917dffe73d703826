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

from db import agents, events


@dataclass(frozen=True)
class Offer:
    """A waiting call matched with a free agent, both now reserved."""

    call_id: uuid.UUID
    channel_id: str
    queue: str
    agent_id: int
    agent_phone: str


async def _log(conn: asyncpg.Connection, event: str, call_id: uuid.UUID | None,
               queue: str | None, agent_id: int | None = None, **data: Any) -> None:
    await conn.execute(
        "INSERT INTO queue_log (call_id, queue, agent_id, event, data) VALUES ($1,$2,$3,$4,$5)",
        call_id, queue, agent_id, event, json.dumps(data),
    )


async def create(conn: asyncpg.Connection, channel_id: str, dialled: str, queue: str) -> uuid.UUID:
    """Record a call that has just arrived in the IVR; return its id."""
    call_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO calls (id, channel_id, dialled_number, queue) VALUES ($1, $2, $3, $4)",
        call_id, channel_id, dialled, queue,
    )
    return call_id


async def enqueue(conn: asyncpg.Connection, call_id: uuid.UUID, service: str, case_id: int) -> None:
    """Put a call in its queue (it keeps this place until served or gone)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET state = 'waiting', service = $2, case_id = $3,
                 entered_queue_at = now() WHERE id = $1 AND state = 'ivr' RETURNING queue""",
            call_id, service, case_id,
        )
        if row is None:
            return
        position = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE queue = $1 AND state = 'waiting'", row["queue"]
        )
        await _log(conn, "ENTERQUEUE", call_id, row["queue"], position=position, service=service)
        await events.notify(conn, events.QUEUE)


async def claim_next(conn: asyncpg.Connection, queue: str) -> Offer | None:
    """Reserve the longest-waiting call and the longest-idle ready agent, or None."""
    async with conn.transaction():
        call = await conn.fetchrow(
            """SELECT id, channel_id FROM calls WHERE queue = $1 AND state = 'waiting'
               ORDER BY entered_queue_at, arrived_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
            queue,
        )
        if call is None:
            return None
        agent = await conn.fetchrow(
            """SELECT id, phone FROM agents WHERE state = 'ready' AND active
               ORDER BY idle_since, id LIMIT 1 FOR UPDATE SKIP LOCKED"""
        )
        if agent is None:
            return None
        await conn.execute(
            "UPDATE calls SET state = 'offered', agent_id = $2 WHERE id = $1",
            call["id"], agent["id"],
        )
        await conn.execute(
            "UPDATE agents SET state = 'ringing', reason = NULL, state_since = now() WHERE id = $1",
            agent["id"],
        )
        await agents.log_state(conn, agent["id"], "ringing", None)
        await _log(conn, "RINGING", call["id"], queue, agent["id"])
        await events.notify(conn, events.OFFER, agent_id=agent["id"], call_id=str(call["id"]))
        await events.notify(conn, events.QUEUE)
        return Offer(call["id"], call["channel_id"], queue, agent["id"], agent["phone"])


async def set_agent_channel(conn: asyncpg.Connection, call_id: uuid.UUID, channel_id: str) -> None:
    await conn.execute("UPDATE calls SET agent_channel_id = $2 WHERE id = $1", call_id, channel_id)


async def offer_failed(conn: asyncpg.Connection, offer: Offer, reason: str,
                       pause: bool = True) -> None:
    """The offer did not turn into a conversation: the call goes back to its place in the
    queue. With pause (a phone that rang unanswered), the agent is made not ready, as
    app_queue's autopause does, so calls are not offered to a phone nobody picks up;
    without (a fault on our side), the agent is ready again."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET state = 'waiting', agent_id = NULL, agent_channel_id = NULL
               WHERE id = $1 AND state = 'offered' RETURNING id""",
            offer.call_id,
        )
        state, why = ("not_ready", reason) if pause else ("ready", None)
        agent = await conn.fetchrow(
            """UPDATE agents SET state = $2, reason = $3, state_since = now(),
                 idle_since = CASE WHEN $2 = 'ready' THEN now() ELSE idle_since END
               WHERE id = $1 AND state = 'ringing' RETURNING id""",
            offer.agent_id, state, why,
        )
        if agent is not None:
            await agents.log_state(conn, offer.agent_id, state, why)
        if row is not None:
            await _log(conn, "RINGNOANSWER", offer.call_id, offer.queue, offer.agent_id,
                       reason=reason)
            await events.notify(conn, events.QUEUE)


async def connect(conn: asyncpg.Connection, offer: Offer, bridge_id: str) -> bool:
    """Caller and agent are bridged; False if the call ended in the meantime."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE calls SET state = 'connected', answered_at = now(), bridge_id = $2
               WHERE id = $1 AND state = 'offered'
               RETURNING extract(epoch FROM now() - entered_queue_at) AS hold""",
            offer.call_id, bridge_id,
        )
        if row is None:
            return False
        await conn.execute(
            "UPDATE agents SET state = 'on_call', reason = NULL, state_since = now() WHERE id = $1",
            offer.agent_id,
        )
        await agents.log_state(conn, offer.agent_id, "on_call", None)
        await conn.execute(
            "UPDATE cases SET agent_id = $2 WHERE id = (SELECT case_id FROM calls WHERE id = $1)",
            offer.call_id, offer.agent_id,
        )
        await _log(conn, "CONNECT", offer.call_id, offer.queue, offer.agent_id,
                   holdtime=round(float(row["hold"]), 3))
        await events.notify(conn, events.CONNECTED, agent_id=offer.agent_id,
                            call_id=str(offer.call_id))
        return True


async def end(conn: asyncpg.Connection, call_id: uuid.UUID, reason: str) -> None:
    """The call is over (reason: caller_hangup, agent_hangup, ...): record how it ended and
    free its agent."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT * FROM calls WHERE id = $1 AND state <> 'ended' FOR UPDATE", call_id
        )
        if row is None:
            return
        await conn.execute(
            # An agent who was only rung keeps no hold on the call (nor on its case).
            """UPDATE calls SET state = 'ended', ended_at = now(), end_reason = $2,
                 agent_id = CASE WHEN state = 'offered' THEN NULL ELSE agent_id END
               WHERE id = $1""",
            call_id, reason,
        )
        waited = None
        if row["entered_queue_at"] is not None:
            waited = await conn.fetchval(
                "SELECT extract(epoch FROM now() - $1::timestamptz)", row["entered_queue_at"]
            )
        if row["state"] in ("waiting", "offered"):
            position = await conn.fetchval(
                """SELECT count(*) FROM calls WHERE queue = $1 AND state IN ('waiting', 'offered')
                   AND entered_queue_at <= $2""",
                row["queue"], row["entered_queue_at"],
            )
            await _log(conn, "ABANDON", call_id, row["queue"], row["agent_id"],
                       position=position + 1, waited=round(float(waited or 0), 3))
        elif row["state"] == "connected":
            talk = await conn.fetchval(
                "SELECT extract(epoch FROM now() - $1::timestamptz)", row["answered_at"]
            )
            event = "COMPLETEAGENT" if reason == "agent_hangup" else "COMPLETECALLER"
            await _log(conn, event, call_id, row["queue"], row["agent_id"],
                       talktime=round(float(talk), 3))
        elif row["state"] == "ivr":
            await _log(conn, "IVRHANGUP", call_id, row["queue"])
        if row["agent_id"] is not None and row["state"] in ("offered", "connected"):
            freed = await conn.fetchrow(
                """UPDATE agents SET state = 'ready', reason = NULL, state_since = now(),
                     idle_since = now()
                   WHERE id = $1 AND state IN ('ringing', 'on_call') RETURNING id""",
                row["agent_id"],
            )
            if freed is not None:
                await agents.log_state(conn, row["agent_id"], "ready", None)
        await events.notify(conn, events.CALL_ENDED, call_id=str(call_id),
                            agent_id=row["agent_id"], reason=reason)
        if row["state"] in ("waiting", "offered"):
            await events.notify(conn, events.QUEUE)


async def get(conn: asyncpg.Connection, call_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM calls WHERE id = $1", call_id)


async def live(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Calls not ended yet, oldest first (for reconciling with Asterisk)."""
    return await conn.fetch("SELECT * FROM calls WHERE state <> 'ended' ORDER BY arrived_at")


async def waiting(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Calls waiting in any queue, in the order they will be served."""
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
        "entered_at": iso(row["entered_queue_at"]),
        "answered_at": iso(row["answered_at"]),
    }

"""Calls out placed from the desk (回拨): one row per attempt in `outbound_calls`.

The desk asks (`request`): the agent must be free of calls, and is held on_call with reason
`outbound` so the queue offers them nothing meanwhile; call control places the call and
moves the row on (`advance`), and `finish` records the outcome: on the row, on the worklist
item it answers, in the case's audit trail, and the agent goes to wrap-up (or back to the
pause they were in). No number is stored here: it is read from the case when dialled.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from db import agents, events, worklist

PURPOSES = ("worklist", "revisit", "case")
# How an attempt ended -> the worklist's outcome for it (None: the attempt does not count).
OUTCOMES = {
    "reached": "reached",
    "busy": "no_answer",
    "no_answer": "no_answer",
    "trunk_failed": None,
    "refused": None,
    "agent_no_answer": None,
    "agent_hangup": None,
    "failed": None,
}
OUTBOUND_REASON = "outbound"  # the agent's state reason while a call out is in progress


class AgentBusy(Exception):
    """The agent is on a call, ringing, logged out, or already calling out."""


async def request(conn: asyncpg.Connection, *, case_id: int, agent_id: int, purpose: str,
                  worklist_call_id: uuid.UUID | None = None,
                  dial_attempt_id: int | None = None) -> int:
    """Record a call out asked for by an agent and hold the agent for it; return its id.

    Raises AgentBusy when the agent cannot take it now (the row is not written)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    async with conn.transaction():
        agent = await conn.fetchrow("SELECT * FROM agents WHERE id = $1 FOR UPDATE", agent_id)
        if agent is None or agent["state"] not in ("ready", "paused", "wrap_up"):
            raise AgentBusy("agent not free")
        if await conn.fetchval("SELECT 1 FROM outbound_calls WHERE agent_id = $1 "
                               "AND state <> 'ended'", agent_id):
            raise AgentBusy("a call out is already in progress")
        out_id: int = await conn.fetchval(
            """INSERT INTO outbound_calls (case_id, agent_id, purpose, worklist_call_id,
                                           dial_attempt_id)
               VALUES ($1, $2, $3, $4, $5) RETURNING id""",
            case_id, agent_id, purpose, worklist_call_id, dial_attempt_id)
        # A paused agent goes back to the same pause afterwards; a ready one to wrap-up.
        after = f"pause:{agent['reason']}" if agent["state"] == "paused" else None
        await conn.execute(
            """UPDATE agents SET state = 'on_call', reason = $2, state_since = now(),
                 wrap_up_until = NULL, after_call = $3 WHERE id = $1""",
            agent_id, OUTBOUND_REASON, after)
        await agents.log_state(conn, agent_id, "on_call", OUTBOUND_REASON)
        await events.notify(conn, events.DIAL, outbound_id=out_id)
    return out_id


async def get(conn: asyncpg.Connection, out_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM outbound_calls WHERE id = $1", out_id)


async def advance(conn: asyncpg.Connection, out_id: int, state: str, **columns: Any) -> None:
    """Move a call out on (agent_ringing, citizen_ringing, connected), with its channels."""
    allowed = {"agent_channel_id", "citizen_channel_id", "trunk"}
    if state not in ("agent_ringing", "citizen_ringing", "connected") or set(columns) - allowed:
        raise ValueError("bad outbound update")
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=3))
    extra = f", {sets}" if sets else ""
    answered = ", answered_at = now()" if state == "connected" else ""
    row = await conn.fetchrow(
        f"UPDATE outbound_calls SET state = $2{extra}{answered} "
        "WHERE id = $1 AND state <> 'ended' RETURNING agent_id, case_id",
        out_id, state, *columns.values())
    if row is not None:
        await events.notify(conn, events.OUTBOUND, outbound_id=out_id, state=state,
                            agent_id=row["agent_id"], case_id=row["case_id"])


async def finish(conn: asyncpg.Connection, out_id: int, outcome: str, *, wrap_up: int,
                 now: Any) -> asyncpg.Record | None:
    """End a call out once: the outcome on the row, the worklist and the case's trail; the
    agent to wrap-up (or their pause). Returns the row, None if it had ended already."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE outbound_calls SET state = 'ended', outcome = $2, ended_at = now()
               WHERE id = $1 AND state <> 'ended' RETURNING *""", out_id, outcome)
        if row is None:
            return None
        talked = row["answered_at"] is not None
        await agents.after_call(conn, row["agent_id"], wrap_up if talked else 0)
        counted = OUTCOMES[outcome]
        if row["worklist_call_id"] is not None and counted is not None:
            await worklist.record_attempt(conn, row["worklist_call_id"], row["agent_id"],
                                          counted)
        # The case's audit trail (casework/audit.py's table): ids and codes only.
        await conn.execute(
            "INSERT INTO case_events (case_id, at, actor_id, action, detail) "
            "VALUES ($1, $2, $3, 'callback_attempt', $4::jsonb)",
            row["case_id"], now, row["agent_id"],
            json.dumps({"outbound_id": out_id, "purpose": row["purpose"], "outcome": outcome,
                        "trunk": row["trunk"]}))
        await events.notify(conn, events.OUTBOUND, outbound_id=out_id, state="ended",
                            outcome=outcome, agent_id=row["agent_id"],
                            case_id=row["case_id"])
    return row

"""Agents: who they are, their desk password, and their state (timestamped)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import events

STATES = ("logged_out", "ready", "ringing", "on_call", "wrap_up", "paused")
BUSY = ("ringing", "on_call")
_hasher = PasswordHasher()  # stateless; argon2id with the library's defaults
# Checked against when a login is unknown, so that failing takes as long either way.
_NO_USER_HASH = _hasher.hash("no such agent")


def hash_password(password: str) -> str:
    """An argon2id hash of a desk password."""
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash (False for no hash)."""
    try:
        if not stored:
            _hasher.verify(_NO_USER_HASH, password + "\0")
            return False
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def sync_from_config(conn: asyncpg.Connection, agents: Iterable[Any]) -> None:
    """Create agents listed in the YAML, update their names and phones, retire the rest."""
    logins = []
    for a in agents:
        logins.append(a.login)
        pw = hash_password(a.initial_password) if a.initial_password else None
        await conn.execute(
            """INSERT INTO agents (login, display_name, phone, password_hash, role, queues)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (login) DO UPDATE
                 SET display_name = EXCLUDED.display_name, phone = EXCLUDED.phone,
                     role = EXCLUDED.role, queues = EXCLUDED.queues, active = true,
                     password_hash = COALESCE(agents.password_hash, EXCLUDED.password_hash)""",
            a.login, a.name, a.phone, pw, a.role, list(a.queues),
        )
    # Handler accounts belong to the directory of linkage units (casework/units.py), not
    # to the YAML: leave them alone.
    await conn.execute("UPDATE agents SET active = false WHERE NOT (login = ANY($1))"
                       " AND role <> 'handler'", logins)


def as_dict(row: asyncpg.Record) -> dict[str, Any]:
    """An agent row as the desk and the CLI show it (no password hash)."""
    return {
        "id": row["id"],
        "login": row["login"],
        "display_name": row["display_name"],
        "phone": row["phone"],
        "role": row["role"],
        "unit_id": row["unit_id"],
        "state": row["state"],
        "reason": row["reason"],
        "since": row["state_since"].isoformat(),
        "after_call": row["after_call"],
        "wrap_up_until": row["wrap_up_until"].isoformat() if row["wrap_up_until"] else None,
    }


async def get(conn: asyncpg.Connection, agent_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM agents WHERE id = $1", agent_id)


async def by_login(conn: asyncpg.Connection, login: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM agents WHERE login = $1 AND active", login)


async def list_active(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM agents WHERE active ORDER BY login")


async def set_state(
    conn: asyncpg.Connection, agent_id: int, state: str, reason: str | None = None
) -> asyncpg.Record:
    """Change an agent's state, log it with a timestamp and notify the other parts."""
    if state not in STATES:
        raise ValueError(f"unknown agent state {state!r}")
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE agents SET state = $2, reason = $3, state_since = now(),
                 idle_since = CASE WHEN $2 = 'ready' AND state NOT IN ('ready', 'wrap_up')
                                   THEN now() ELSE idle_since END,
                 wrap_up_until = NULL,
                 after_call = CASE WHEN $2 IN ('ringing', 'on_call') THEN after_call END
               WHERE id = $1 RETURNING *""",
            agent_id, state, reason,
        )
        if row is None:
            raise LookupError(f"no agent {agent_id}")
        await log_state(conn, agent_id, state, reason)
    return row


async def log_state(
    conn: asyncpg.Connection, agent_id: int, state: str, reason: str | None
) -> None:
    """Record a state change already written to the agents row, and tell the others."""
    await conn.execute(
        "INSERT INTO agent_state_log (agent_id, state, reason) VALUES ($1, $2, $3)",
        agent_id, state, reason,
    )
    await events.notify(conn, events.AGENT, agent_id=agent_id)


async def request_state(
    conn: asyncpg.Connection, agent_id: int, wanted: str, reason: str | None = None
) -> tuple[asyncpg.Record, bool]:
    """An agent (or their supervisor) asks for ready, paused or logged_out.

    During a call the request is kept and carried out when the call ends (returns True
    for pending); asking for ready during a call cancels such a request.
    """
    if wanted not in ("ready", "paused", "logged_out"):
        raise ValueError(f"cannot ask for state {wanted!r}")
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM agents WHERE id = $1 FOR UPDATE", agent_id)
        if row is None:
            raise LookupError(f"no agent {agent_id}")
        if wanted == "logged_out" and row["state"] == "logged_out":
            return row, False  # already out: nothing to log again
        if row["state"] in BUSY:
            after = None if wanted == "ready" else (
                "logout" if wanted == "logged_out" else f"pause:{reason or 'break'}")
            row = await conn.fetchrow(
                "UPDATE agents SET after_call = $2 WHERE id = $1 RETURNING *", agent_id, after)
            await events.notify(conn, events.AGENT, agent_id=agent_id)
            return row, after is not None
        return await set_state(conn, agent_id, wanted, reason), False


async def after_call(conn: asyncpg.Connection, agent_id: int, wrap_up: int) -> str | None:
    """The agent's call (or the offer ringing their phone) has ended: carry out a pending
    logout or pause, else wrap-up for wrap_up seconds, else ready. Returns the new state,
    or None when the agent was not busy (a supervisor may have logged them out)."""
    row = await conn.fetchrow(
        "SELECT state, after_call FROM agents WHERE id = $1 FOR UPDATE", agent_id)
    if row is None or row["state"] not in BUSY:
        return None
    pending = row["after_call"] or ""
    reason: str | None = None
    if pending == "logout":
        state, reason = "logged_out", "logout"
    elif pending.startswith("pause:"):
        state, reason = "paused", pending.removeprefix("pause:")
    elif wrap_up > 0 and row["state"] == "on_call":
        state = "wrap_up"
    else:
        state = "ready"
    await conn.execute(
        """UPDATE agents SET state = $2, reason = $3, state_since = now(), after_call = NULL,
             idle_since = CASE WHEN $2 IN ('ready', 'wrap_up') AND state = 'on_call'
                               THEN now() ELSE idle_since END,
             wrap_up_until = CASE WHEN $2 = 'wrap_up'
                                  THEN now() + make_interval(secs => $4) END
           WHERE id = $1""",
        agent_id, state, reason, float(wrap_up),
    )
    await log_state(conn, agent_id, state, reason)
    return state


async def finish_wrap_ups(conn: asyncpg.Connection) -> list[int]:
    """Make ready every agent whose wrap-up time is over; return their ids."""
    async with conn.transaction():
        rows = await conn.fetch(
            """UPDATE agents SET state = 'ready', reason = NULL, state_since = now(),
                 wrap_up_until = NULL
               WHERE state = 'wrap_up' AND wrap_up_until <= now() RETURNING id"""
        )
        for r in rows:
            await log_state(conn, r["id"], "ready", "wrap_up_end")
    return [r["id"] for r in rows]


async def extend_wrap_up(conn: asyncpg.Connection, agent_id: int, seconds: int,
                         max_total: int) -> asyncpg.Record | None:
    """Give an agent in wrap-up more time, up to max_total seconds of wrap-up in all."""
    row = await conn.fetchrow(
        """UPDATE agents SET wrap_up_until = least(wrap_up_until + make_interval(secs => $2),
                                                  state_since + make_interval(secs => $3))
           WHERE id = $1 AND state = 'wrap_up' RETURNING *""",
        agent_id, float(seconds), float(max_total),
    )
    if row is not None:
        await events.notify(conn, events.AGENT, agent_id=agent_id)
    return row

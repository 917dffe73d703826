"""Agents: who they are, their desk password, and their state (timestamped)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import events

STATES = ("logged_out", "not_ready", "ready", "ringing", "on_call")
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
            """INSERT INTO agents (login, display_name, phone, password_hash)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (login) DO UPDATE
                 SET display_name = EXCLUDED.display_name, phone = EXCLUDED.phone,
                     active = true,
                     password_hash = COALESCE(agents.password_hash, EXCLUDED.password_hash)""",
            a.login, a.name, a.phone, pw,
        )
    await conn.execute("UPDATE agents SET active = false WHERE NOT (login = ANY($1))", logins)


def as_dict(row: asyncpg.Record) -> dict[str, Any]:
    """An agent row as the desk and the CLI show it (no password hash)."""
    return {
        "id": row["id"],
        "login": row["login"],
        "display_name": row["display_name"],
        "phone": row["phone"],
        "state": row["state"],
        "reason": row["reason"],
        "since": row["state_since"].isoformat(),
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
                 idle_since = CASE WHEN $2 = 'ready' AND state <> 'ready' THEN now()
                                   ELSE idle_since END
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

"""Desk login sessions: only a hash of the token is stored, with a CSRF secret."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

IDLE_MINUTES = 30
MAX_HOURS = 13  # a 12-hour duty shift and some margin


@dataclass(frozen=True)
class Session:
    agent_id: int
    csrf: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create(conn: asyncpg.Connection, agent_id: int) -> tuple[str, Session]:
    """Start a session; return the token for the cookie and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO desk_sessions (token_hash, agent_id, csrf, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(hours => $4))""",
        _hash(token), agent_id, csrf, MAX_HOURS,
    )
    return token, Session(agent_id, csrf)


async def lookup(conn: asyncpg.Connection, token: str) -> Session | None:
    """The live session for a token (touching it), or None when unknown, idle or expired."""
    row = await conn.fetchrow(
        """UPDATE desk_sessions SET last_seen_at = now()
           WHERE token_hash = $1 AND expires_at > now()
             AND last_seen_at > now() - make_interval(mins => $2)
           RETURNING agent_id, csrf""",
        _hash(token), IDLE_MINUTES,
    )
    return Session(row["agent_id"], row["csrf"]) if row else None


async def end(conn: asyncpg.Connection, token: str) -> None:
    await conn.execute("DELETE FROM desk_sessions WHERE token_hash = $1", _hash(token))

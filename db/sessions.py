"""Desk login sessions: only a hash of the token is stored, with a CSRF secret.

A session ends on logout, after IDLE_MINUTES without the user doing anything, and
MAX_HOURS after login. What counts as doing something is the desk's business
(agent_desk/app.py: requests that change state and the desk's activity pings); an agent
working the queue (ready, ringing, on a call or in wrap-up) with the desk open is never
idle, and an open desk keeps the session past its lifetime while its agent is on a call or
in its wrap-up: it ends right after, never mid-call.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

IDLE_MINUTES = 30
MAX_HOURS = 13  # a 12-hour duty shift and some margin
IDLE = timedelta(minutes=IDLE_MINUTES)
# States in which an agent with the desk open is working even without touching it.
ON_DUTY = ("ready", "ringing", "on_call", "wrap_up")
# States in which an open desk carries the session past its lifetime (the call comes first).
BUSY = ("ringing", "on_call", "wrap_up")


@dataclass(frozen=True)
class Session:
    agent_id: int
    csrf: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


# The session is alive: its agent is active, it was used within the idle limit and it is
# within its lifetime. $1 token hash, $2 now, $3 idle limit.
_ALIVE = """s.token_hash = $1 AND a.id = s.agent_id AND a.active
            AND s.last_seen_at > $2::timestamptz - $3::interval AND s.expires_at > $2"""
# How far an open desk pushes the end of a session whose agent is on a call: more than the
# desk's check interval, so the session outlives the call (or its wrap-up) and then ends.
CALL_GRACE = timedelta(minutes=5)


async def create(conn: asyncpg.Connection, agent_id: int,
                 now: datetime | None = None) -> tuple[str, Session]:
    """Start a session; return the token for the cookie and the session."""
    now = _now(now)
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    await conn.execute(
        """INSERT INTO desk_sessions (token_hash, agent_id, csrf, created_at, last_seen_at,
                                      expires_at)
           VALUES ($1, $2, $3, $4, $4, $5)""",
        _hash(token), agent_id, csrf, now, now + timedelta(hours=MAX_HOURS),
    )
    # Sessions nobody logged out of would otherwise stay for ever (a day's margin keeps
    # the ones of agents still on a call).
    await conn.execute(
        "DELETE FROM desk_sessions WHERE expires_at < $1 OR last_seen_at < $2",
        now - timedelta(days=1), now - timedelta(days=1))
    return token, Session(agent_id, csrf)


async def lookup(conn: asyncpg.Connection, token: str, now: datetime | None = None, *,
                 touch: bool = True) -> Session | None:
    """The live session for a token, or None when unknown, idle, expired or its agent is
    gone. ``touch`` counts this as the user's activity (resets the idle time)."""
    now = _now(now)
    if touch:
        row = await conn.fetchrow(
            f"""UPDATE desk_sessions s SET last_seen_at = greatest(s.last_seen_at, $2)
                FROM agents a WHERE {_ALIVE} RETURNING s.agent_id, s.csrf""",
            _hash(token), now, IDLE)
    else:
        row = await conn.fetchrow(
            f"""SELECT s.agent_id, s.csrf FROM desk_sessions s, agents a WHERE {_ALIVE}""",
            _hash(token), now, IDLE)
    return Session(row["agent_id"], row["csrf"]) if row else None


async def keep_alive(conn: asyncpg.Connection, token: str,
                     now: datetime | None = None) -> Session | None:
    """For an open desk: the live session (None once it has ended), kept from going idle
    while its agent works the queue (ready, ringing, on a call or in wrap-up), and kept
    past its lifetime while the agent is on a call or in its wrap-up."""
    now = _now(now)
    row = await conn.fetchrow(
        f"""UPDATE desk_sessions s
            SET last_seen_at = CASE WHEN a.state = ANY($4::text[])
                                    THEN greatest(s.last_seen_at, $2) ELSE s.last_seen_at END,
                expires_at = CASE WHEN a.state = ANY($5::text[])
                                  THEN greatest(s.expires_at, $2 + $6::interval)
                                  ELSE s.expires_at END
            FROM agents a WHERE {_ALIVE} RETURNING s.agent_id, s.csrf""",
        _hash(token), now, IDLE, list(ON_DUTY), list(BUSY), CALL_GRACE)
    return Session(row["agent_id"], row["csrf"]) if row else None


async def end(conn: asyncpg.Connection, token: str) -> None:
    """End a session (logout)."""
    await conn.execute("DELETE FROM desk_sessions WHERE token_hash = $1", _hash(token))

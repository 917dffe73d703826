"""The SIP guard's bans (`sip_bans`): addresses shut out of Asterisk for a while.

hotline/sipguard.py bans and lets bans expire; `hotline sip-bans` lists them and lifts one
by hand. Each change sends a `sip_bans` notice so the guard rewrites Asterisk's ACL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from db import events, service_status


async def ban(conn: asyncpg.Connection, address: str, *, reason: str, failures: int,
              minutes: int, now: datetime) -> bool:
    """Ban the address until now + minutes; False when a ban is already in force."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO sip_bans (address, reason, failures, banned_at, until)
               VALUES ($1::inet, $2, $3, $4, $5)
               ON CONFLICT (address) WHERE lifted_at IS NULL DO NOTHING RETURNING id""",
            address, reason, failures, now, now + timedelta(minutes=minutes))
        if row is None:
            return False
        await events.notify(conn, events.SIP_BANS, address=address, banned=True)
        return True


async def in_force(conn: asyncpg.Connection, now: datetime) -> list[str]:
    """The addresses banned now, as text."""
    rows = await conn.fetch(
        "SELECT host(address) AS a FROM sip_bans WHERE lifted_at IS NULL AND until > $1 "
        "ORDER BY address", now)
    return [r["a"] for r in rows]


async def expire(conn: asyncpg.Connection, now: datetime) -> list[str]:
    """End the bans whose time is up; the addresses let in again."""
    rows = await conn.fetch(
        """UPDATE sip_bans SET lifted_at = until, lifted_by = 'expired'
           WHERE lifted_at IS NULL AND until <= $1 RETURNING host(address) AS a""", now)
    return [r["a"] for r in rows]


async def lift(conn: asyncpg.Connection, address: str, *, by: str, now: datetime) -> bool:
    """Lift the ban in force on the address by hand; False when there is none."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE sip_bans SET lifted_at = $3, lifted_by = $2
               WHERE address = $1::inet AND lifted_at IS NULL RETURNING id""",
            address, by, now)
        if row is None:
            return False
        await events.notify(conn, events.SIP_BANS, address=address, banned=False)
        return True


async def recent(conn: asyncpg.Connection, limit: int = 50) -> list[asyncpg.Record]:
    """The latest bans, in force or not, newest first."""
    return list(await conn.fetch(
        """SELECT id, host(address) AS address, reason, failures, banned_at, until,
                  lifted_at, lifted_by FROM sip_bans ORDER BY banned_at DESC, id DESC
           LIMIT $1""", limit))


async def heartbeat(conn: asyncpg.Connection, *, watching: bool, banned: int) -> None:
    """The guard is alive (service_status 'sipguard', shown by `hotline status`)."""
    await service_status.beat(conn, "sipguard", {"watching": watching, "banned": banned})

"""Login attempts: the lock-out counted in PostgreSQL and the record of every attempt.

Failures are counted per login name in the database, so a lock-out holds across restarts
and across desk processes: FAILURES_BEFORE_LOCK wrong passwords (or second-factor codes)
within WINDOW lock the name for LOCK_FOR. Names that are not accounts are counted the same
way, so the answer never tells which logins exist. Failures are also counted per client
address (from the record of attempts): an IPv4 address, or an IPv6 /64 (address_group). No
password is ever stored; a login name is recorded only when it names an account.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

FAILURES_BEFORE_LOCK = 5
WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
# Per client address: a duty room behind one NAT address shares this, so it is generous;
# it stops one machine from trying many names.
ADDRESS_FAILURES = 30
# An IPv6 subscriber (a home line, a data centre machine) usually holds a whole /64 and may
# use a fresh address of it for every try: counting single IPv6 addresses would stop nobody.
IPV6_GROUP_PREFIX = 64
OUTCOMES = ("success", "failure", "totp_failure", "lockout", "locked", "address_limited",
            "unlocked", "totp_enabled", "totp_disabled")
FAILURES = ("failure", "totp_failure")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressGroup = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Attempt:
    """Who is trying to log in: the name typed, the account it names (if any), from where."""

    login: str
    agent_id: int | None
    address: Address | None


def address_group(address: Address) -> AddressGroup:
    """The addresses whose failures count together: an IPv4 address alone, an IPv6
    address with the rest of its /64."""
    if isinstance(address, ipaddress.IPv4Address):
        return ipaddress.IPv4Network(address)
    return ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False)


def login_key(login: str) -> bytes:
    """What the lock-out is counted under: a hash of the name, not the name (it may be a
    password typed into the wrong box)."""
    return hashlib.sha256(b"hotline-login\0" + login.encode("utf-8")).digest()


async def record(conn: asyncpg.Connection, attempt: Attempt, outcome: str, now: datetime,
                 actor_id: int | None = None) -> None:
    """Add a row to the record of login events (the name only if it is an account's)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown login outcome {outcome!r}")
    await conn.execute(
        """INSERT INTO login_events (at, login, agent_id, address, outcome, actor_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        now, attempt.login if attempt.agent_id is not None else None, attempt.agent_id,
        attempt.address, outcome, actor_id,
    )


async def locked_until(conn: asyncpg.Connection, login: str, now: datetime) -> datetime | None:
    """Until when this login name is locked, or None when it may try."""
    until: datetime | None = await conn.fetchval(
        "SELECT locked_until FROM login_throttle WHERE login_key = $1 AND locked_until > $2",
        login_key(login), now)
    return until


async def address_blocked_until(conn: asyncpg.Connection, address: Address | None,
                                now: datetime) -> datetime | None:
    """Until when an address may not try (ADDRESS_FAILURES failures within WINDOW from its
    address_group), or None."""
    if address is None:
        return None
    # The record keeps each exact address; the count takes its group, as the range from
    # its first to its last address (the record holds single addresses only). A range,
    # not `<<= group`: a prepared statement's generic plan uses the index on (address, at)
    # for a range of parameters, and not for `<<=`.
    group = address_group(address)
    times = await conn.fetch(
        """SELECT at FROM login_events WHERE address BETWEEN $1 AND $2 AND at > $3
             AND outcome = ANY($4::text[]) ORDER BY at DESC LIMIT $5""",
        group.network_address, group.broadcast_address, now - WINDOW, list(FAILURES),
        ADDRESS_FAILURES)
    if len(times) < ADDRESS_FAILURES:
        return None
    # Free again once the oldest of the last ADDRESS_FAILURES failures leaves the window.
    oldest: datetime = times[-1]["at"]
    return oldest + WINDOW


async def failed(conn: asyncpg.Connection, attempt: Attempt, now: datetime,
                 outcome: str = "failure") -> datetime | None:
    """Count a failed attempt (and record it); return the lock's end if it locked the name."""
    async with conn.transaction():
        await record(conn, attempt, outcome, now)
        # A window that is over starts again at this failure.
        failures = await conn.fetchval(
            """INSERT INTO login_throttle (login_key, agent_id, failures, window_start)
               VALUES ($1, $2, 1, $3)
               ON CONFLICT (login_key) DO UPDATE SET
                 agent_id = EXCLUDED.agent_id,
                 failures = CASE WHEN login_throttle.window_start <= $3 - $4::interval
                                 THEN 1 ELSE login_throttle.failures + 1 END,
                 window_start = CASE WHEN login_throttle.window_start <= $3 - $4::interval
                                     THEN $3 ELSE login_throttle.window_start END
               RETURNING failures""",
            login_key(attempt.login), attempt.agent_id, now, WINDOW)
        until = None
        if failures >= FAILURES_BEFORE_LOCK:
            until = now + LOCK_FOR
            # Counting starts afresh when the lock ends.
            await conn.execute(
                """UPDATE login_throttle SET locked_until = $2, failures = 0, window_start = $3
                   WHERE login_key = $1""",
                login_key(attempt.login), until, now)
            await record(conn, attempt, "lockout", now)
        # Names that are no account are kept only while they matter.
        await conn.execute(
            """DELETE FROM login_throttle WHERE agent_id IS NULL AND window_start < $1
                 AND (locked_until IS NULL OR locked_until < $2)""",
            now - WINDOW, now)
    return until


async def succeeded(conn: asyncpg.Connection, attempt: Attempt, now: datetime) -> None:
    """A successful login: record it and forget the earlier failures."""
    await record(conn, attempt, "success", now)
    await conn.execute("DELETE FROM login_throttle WHERE login_key = $1",
                       login_key(attempt.login))


async def unlock(conn: asyncpg.Connection, agent_id: int, login: str, actor_id: int,
                 now: datetime, address: Address | None = None) -> bool:
    """Lift an account's lock and its count of failures; True if it was locked."""
    rows = await conn.fetch(
        """DELETE FROM login_throttle WHERE agent_id = $1 OR login_key = $2
           RETURNING locked_until > $3 AS locked""",
        agent_id, login_key(login), now)
    await record(conn, Attempt(login, agent_id, address), "unlocked", now, actor_id)
    return any(r["locked"] for r in rows)


async def locked_accounts(conn: asyncpg.Connection, now: datetime) -> list[asyncpg.Record]:
    """The accounts locked now: id, login, display_name, locked_until."""
    return await conn.fetch(
        """SELECT a.id, a.login, a.display_name, t.locked_until FROM login_throttle t
           JOIN agents a ON a.id = t.agent_id WHERE t.locked_until > $1 ORDER BY a.login""",
        now)


def retry_minutes(until: datetime, now: datetime) -> int:
    """Whole minutes until a lock ends, at least 1 (what the user is told)."""
    return max(1, math.ceil((until - now).total_seconds() / 60))

"""The dial guard: every number the hotline dials out passes :func:`check` first.

The numbering plan (dialplan/numbering.py) decides whether a number may be dialled at all;
this module adds the caps that need memory: at most ``max_per_number_per_hour`` calls to one
number and ``max_per_hour`` calls overall in any hour (a stuck retry loop, or a desk user
keying the same citizen again and again, must not turn the hotline into a harassment line or
run up the carrier's bill). Every attempt, dialled or refused, is written to
``dial_attempts`` with its purpose and who asked; the number only as its blind index.

Only dialled attempts count towards the caps: an agent retrying a refused number must not
keep it locked out.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from db import logsafe
from db.crypto import Keyring
from dialplan import numbering
from dialplan.numbering import GuardRules, NumberKind

__all__ = ["WINDOW", "Decision", "check"]

log = logging.getLogger(__name__)

# Serialises the guard's count-then-insert between processes (any constant will do).
DIAL_GUARD_LOCK = 0x4449414C
WINDOW = timedelta(hours=1)

_REASONS = {
    "too_many_for_number": "该号码一小时内外呼次数已达上限（{n} 次），请稍后再拨",
    "too_many_per_hour": "本小时外呼总次数已达上限（{n} 次），请稍后再拨",
}


@dataclass(frozen=True)
class Decision:
    """The guard's answer. ``dial_digits`` is set only when ``allowed``; ``reason`` is for
    the agent (Chinese), ``code`` for programs; ``masked`` is the number as logs may show
    it; ``attempt_id`` the row in ``dial_attempts``."""

    allowed: bool
    code: str
    reason: str
    masked: str
    kind: NumberKind
    attempt_id: int
    dial_digits: str | None = None


def _index(keyring: Keyring, value: str) -> bytes:
    try:
        return keyring.blind_index(value)
    except ValueError:
        # No digits at all ("*#"): still recorded, but matched to nothing.
        return b""


async def check(conn: asyncpg.Connection, keyring: Keyring, text: str, rules: GuardRules, *,
                purpose: str, now: datetime, call_id: uuid.UUID | None = None,
                case_id: int | None = None, agent_id: int | None = None) -> Decision:
    """Decide whether ``text`` (keyed by a person or taken from a caller ID) may be dialled
    now, and record the attempt either way.

    Call it in a transaction of its own, or at the end of a short one at READ COMMITTED (the
    default): the lock taken here is held until the outermost transaction ends, and every
    other dial check in the hotline waits for it.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone")
    if not purpose:
        raise ValueError("purpose must say why the number is dialled")
    parsed = numbering.parse(text, rules)
    # Refused input is indexed and masked by its digits (capped like parse caps it), so the
    # log can show that someone keeps trying one number however it was dressed up.
    shown = parsed.national or text[:numbering.MAX_INPUT]
    masked = mask(shown)
    digits = numbering.dial_digits(parsed, rules) if parsed.allowed else None
    code = parsed.code
    n = 0
    async with conn.transaction():
        if parsed.allowed:
            # One lock for all numbers: the per-hour cap spans every number, so per-number
            # locks would still let two checks for different numbers both take the last
            # overall slot; and SELECT ... FOR UPDATE cannot lock the rows of a number never
            # dialled before. Checks are rare (max_per_hour), so waiting costs nothing. The
            # count below runs after the lock is granted, so at READ COMMITTED it sees the
            # attempt the previous holder committed.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", DIAL_GUARD_LOCK)
            counts = await conn.fetchrow(
                """SELECT count(*) FILTER (WHERE number_index = ANY($2::bytea[])) AS number,
                          count(*) AS overall
                   FROM dial_attempts WHERE outcome = 'dialled' AND at > $1""",
                now - WINDOW, keyring.blind_indexes(parsed.national))
            assert counts is not None  # an aggregate always returns a row
            if counts["number"] >= rules.max_per_number_per_hour:
                code, n = "too_many_for_number", rules.max_per_number_per_hour
            elif counts["overall"] >= rules.max_per_hour:
                code, n = "too_many_per_hour", rules.max_per_hour
        allowed = code == "ok"
        attempt_id: int = await conn.fetchval(
            """INSERT INTO dial_attempts (at, number_index, purpose, call_id, case_id,
                                          outcome, reason, agent_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id""",
            now, _index(keyring, shown), purpose, call_id, case_id,
            "dialled" if allowed else "refused", None if allowed else code, agent_id)
    if not allowed:
        # The masked form only: the log filter is a net, not a licence.
        log.info("dial refused for %s (%s): %s", purpose, code, masked)
    reason = _REASONS[code].format(n=n) if code in _REASONS else parsed.reason
    return Decision(allowed, code, reason, masked, parsed.kind, attempt_id,
                    digits if allowed else None)


def mask(number: str) -> str:
    """A number for logs, masked the way the log filter (db/logsafe.py) masks it:
    ``13800138000`` -> ``138******00``; short codes and the hotline's own public numbers
    stay readable.

    Only the digits are kept first: in refused input such as ``138x0013x8000`` the
    letters would otherwise split the number into short runs that the filter leaves alone.
    """
    text = number.strip()
    digits = "".join(ch for ch in text if ch.isdecimal())
    # Keep a leading "+": "+20260101..." is a foreign number, and without its "+" the
    # filter would take it for a case number and leave it readable.
    return logsafe.mask(("+" if text.startswith(("+", "＋")) else "") + digits)


# The caps look one hour back; the rest of the record answers "who called which case's
# citizen when" for a supervisor's review. After this, only the outbound_calls rows (no
# number in any form) remain.
KEEP_DAYS = 90


async def purge(conn: asyncpg.Connection, now: datetime, days: int = KEEP_DAYS) -> int:
    """Delete attempts older than `days` days (the number's blind index goes with them);
    return how many."""
    result = await conn.execute("DELETE FROM dial_attempts WHERE at < $1",
                                now - timedelta(days=days))
    return int(result.split()[-1])

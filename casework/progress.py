"""A caller's own look at their case by phone: a verification code given at intake, and the
progress of the case in words a caller understands.

The code is six digits, kept only as an argon2id hash. A wrong code and an unknown case
number give the same answer (None), taking about as long, so case numbers cannot be probed.
Only public facts are told: status, lead unit, due date, the public summary of the result.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from casework import audit

LOCAL = ZoneInfo("Asia/Shanghai")
CODE_DIGITS = 6
# Wrong tries (a wrong code, or a case number that does not exist) from one calling number
# within LOCKOUT_WINDOW before that number gets no more answers for a while: three tries per
# call would otherwise allow unlimited guessing over many calls. Counted per caller, never
# per case, so a stranger cannot lock a citizen out of their own case.
MAX_WRONG_CODES = 10
# Withheld numbers cannot be told apart: they share one, larger allowance.
MAX_WRONG_WITHHELD = 30
# A backstop against guessing one case's code from many numbers: 100 wrong codes in a day
# (the chance of hitting a 6-digit code is then 1 in 10,000) close it by phone for the day.
MAX_WRONG_PER_CASE = 100
LOCKOUT_WINDOW = timedelta(hours=24)
KEEP_ATTEMPTS = timedelta(days=2)

# What a caller hears for each status (db/migrations/0007_case_workflow.sql).
STATUS_WORDS: dict[str, str] = {
    "intake": "已受理，正在登记",
    "pending": "已受理，正在等待转交承办单位",
    "assigned": "已转交承办单位办理",
    "accepted": "承办单位正在办理",
    "returned": "热线正在重新转交承办单位",
    "reported": "承办单位已答复，热线正在审核",
    "reviewed": "已审核，热线将回访您",
    "closed": "已办结",
    "archived": "已办结",
}
# Still waiting for the unit's answer: past the due date means late.
_AWAITING_UNIT = ("pending", "assigned", "accepted", "returned")
_FINISHED = ("closed", "archived")

_hasher = PasswordHasher()  # argon2id with the library's defaults, as for desk passwords
# Checked against when the case is unknown, so that failing takes as long either way.
_NO_CASE_HASH = _hasher.hash("no such case")


@dataclass(frozen=True)
class Progress:
    """What a caller may hear about their case."""

    case_no: str
    status: str
    status_words: str
    unit: str | None  # the lead unit's name, once assigned
    due: date | None  # the due date, local (Asia/Shanghai)
    late: bool  # past the due date and the unit has not answered yet
    summary: str | None  # the public summary of the result, once closed


async def issue_code(conn: asyncpg.Connection, case_id: int) -> str:
    """A fresh 6-digit verification code for the case, to be read to the caller once.

    Only its argon2id hash is stored; a new code replaces the old one.
    """
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    digest = await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, code)
    done = await conn.execute("UPDATE cases SET verify_hash = $2 WHERE id = $1", case_id, digest)
    if done != "UPDATE 1":
        raise LookupError(f"there is no case {case_id}")
    return code


async def _locked_out(conn: asyncpg.Connection, caller_index: bytes | None,
                      case_id: int | None, now: datetime) -> bool:
    """Whether this caller tried too many wrong ones lately, or the case was guessed at
    from too many numbers."""
    since = now - LOCKOUT_WINDOW
    wrong = await conn.fetchval(
        "SELECT count(*) FROM progress_attempts WHERE caller_index IS NOT DISTINCT FROM $1 "
        "AND NOT ok AND at > $2", caller_index, since)
    if wrong >= (MAX_WRONG_CODES if caller_index is not None else MAX_WRONG_WITHHELD):
        return True
    if case_id is None:
        return False
    on_case = await conn.fetchval(
        "SELECT count(*) FROM progress_attempts WHERE case_id = $1 AND NOT ok AND at > $2",
        case_id, since)
    return bool(on_case >= MAX_WRONG_PER_CASE)


async def purge_attempts(conn: asyncpg.Connection, now: datetime) -> int:
    """Forget tries older than KEEP_ATTEMPTS (they hold callers' blind indexes)."""
    done = await conn.execute("DELETE FROM progress_attempts WHERE at < $1",
                              now - KEEP_ATTEMPTS)
    return int(done.split()[-1])


def _matches(stored: str | None, code: str) -> bool:
    try:
        if not stored:
            _hasher.verify(_NO_CASE_HASH, code + "\0")
            return False
        return _hasher.verify(stored, code)
    except (VerificationError, InvalidHashError):
        return False


async def lookup(conn: asyncpg.Connection, case_no: str, code: str,
                 now: datetime, caller_index: bytes | None = None) -> Progress | None:
    """The progress of a case, or None when the number is unknown, the case was merged or
    found invalid, the code is wrong, or this calling number (caller_index, its blind
    index; None: withheld) tried too many wrong ones lately.

    Every try is counted in `progress_attempts` under the caller; a successful lookup is
    written to the case's audit trail ('progress_heard'), a wrong code for an existing case
    too ('progress_code_wrong'), and a refusal of a locked-out caller ('progress_locked').
    """
    row = await conn.fetchrow(
        """SELECT c.id, c.case_no, c.status, c.verify_hash, c.due_at, c.public_summary,
                  u.name AS unit
           FROM cases c LEFT JOIN units u ON u.id = c.lead_unit_id
           WHERE c.case_no = $1""", case_no.strip())
    usable = row is not None and row["status"] in STATUS_WORDS
    stored = row["verify_hash"] if usable and row is not None else None
    # argon2 takes tens of milliseconds: off the event loop, which serves other calls.
    ok = await asyncio.get_running_loop().run_in_executor(None, _matches, stored, code.strip())
    case_id = row["id"] if row is not None and usable else None
    async with conn.transaction():
        # Serialise one caller's lookups so the lockout count is exact.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
                           caller_index.hex() if caller_index else "withheld")
        if await _locked_out(conn, caller_index, case_id, now):
            if case_id is not None:
                await audit.record(conn, case_id, "progress_locked", None, now)
            return None
        await conn.execute(
            "INSERT INTO progress_attempts (caller_index, case_id, ok, at) "
            "VALUES ($1, $2, $3, $4)", caller_index, case_id, ok and case_id is not None, now)
        if case_id is None or row is None:
            return None  # an unknown or closed-off case number counts as a wrong try
        if not ok:
            await audit.record(conn, case_id, "progress_code_wrong", None, now)
            return None
        await audit.record(conn, case_id, "progress_heard", None, now, status=row["status"])
    status = row["status"]
    due_at: datetime | None = row["due_at"]
    return Progress(
        case_no=row["case_no"],
        status=status,
        status_words=STATUS_WORDS[status],
        unit=row["unit"],
        due=due_at.astimezone(LOCAL).date() if due_at else None,
        late=bool(due_at and status in _AWAITING_UNIT and now > due_at),
        summary=(row["public_summary"] or None) if status in _FINISHED else None,
    )

"""A caller hears the progress of their case by phone: the FastAGI lookup through the real
Asterisk (menu key 1 of the test number 96007 goes to it)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from casework import progress
from tests.conftest import Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def _assigned_case(db: asyncpg.Connection) -> tuple[int, str, str]:
    """A case handed to a unit, with its code: (id, case number, code)."""
    suffix = f"{secrets.randbelow(10 ** 6):06d}"
    unit = await db.fetchval(
        "INSERT INTO units (code, name, level) VALUES ($1, '市城市管理局', 1) RETURNING id",
        f"t-progress-{suffix}")
    case_no = f"20250506{suffix}"
    case_id = await db.fetchval(
        """INSERT INTO cases (case_no, dialled_number, service, status, lead_unit_id, due_at)
           VALUES ($1, '12345', 'hotline', 'assigned', $2, $3) RETURNING id""",
        case_no, unit, datetime.now(UTC) + timedelta(days=5))
    return case_id, case_no, await progress.issue_code(db, case_id)


async def _progress_channel(db: asyncpg.Connection, before: set[uuid.UUID]) -> str:
    """The hotline side of the new call on 96007, once the menu sent it to the lookup."""
    await wait_until(db, "SELECT count(*) FROM calls WHERE dialled_number = '96007' "
                         "AND end_reason = 'self_service_progress' "
                         "AND NOT (id = ANY($1::uuid[]))", list(before))
    return str(await db.fetchval("SELECT channel_id FROM calls WHERE dialled_number = '96007' "
                                 "AND NOT (id = ANY($1::uuid[]))", list(before)))


def _on(event: dict[str, Any]) -> str | None:
    """The channel an event is about (a global variable's change has none)."""
    return event.get("channel", {}).get("id")


async def _call(stack: Stack, db: asyncpg.Connection, keys: str,
                timeout: float) -> tuple[str, list[str], float]:
    """Call 96007 keying `keys`; wait until the call ends by itself. The hotline side's
    channel, the values HOTLINE_PROGRESS took (as value/tries), from ARI's events (a
    channel outside Stasis cannot be asked for its variables, but its changes are seen by
    a subscribe-all observer), and the seconds from the last of them to the hang-up."""
    events: list[dict[str, Any]] = []
    async with stack.ari(subscribe_all=True) as ari:
        async def seen(event: dict[str, Any]) -> None:
            events.append(event)
        ari.on("ChannelVarset", seen)
        ari.on("ChannelDestroyed", seen)
        watcher = asyncio.create_task(ari.run())
        await asyncio.wait_for(ari.connected.wait(), 15)
        before = {r["id"] for r in await db.fetch("SELECT id FROM calls")}
        stack.call("96007", "13500000071", "--dtmf", keys)
        channel = await _progress_channel(db, before)
        deadline = time.monotonic() + timeout
        while not any(e["type"] == "ChannelDestroyed" and _on(e) == channel
                      for e in events):
            if time.monotonic() > deadline:
                raise AssertionError(f"the call was still up after {timeout} s")
            await asyncio.sleep(0.2)
        watcher.cancel()
    outcome: list[str] = []
    tries = ""
    last = end = 0.0
    for e in events:
        if _on(e) != channel:
            continue
        at = datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        if e["type"] == "ChannelDestroyed":
            end = at
        elif e["variable"] == "HOTLINE_PROGRESS_TRIES":
            tries = e["value"]
        elif e["variable"] == "HOTLINE_PROGRESS":
            outcome.append(f"{e['value']}/{tries}")
            last = at
    return channel, outcome, end - last


async def test_a_caller_with_the_right_code_hears_the_progress(
        stack: Stack, db: asyncpg.Connection) -> None:
    case_id, case_no, code = await _assigned_case(db)
    # 1 in the menu; the case number and # during the question; then the code.
    channel, seen, then = await _call(stack, db, f"1wwwwww{case_no}#ww{code}", timeout=90)
    assert seen == ["found/1"], seen
    # The status (已转交承办单位办理, the unit, the due date: over ten seconds of speech) and a
    # goodbye were played before the hang-up, not the short apology.
    assert then > 10, then
    heard = await db.fetch("SELECT actor_id, detail FROM case_events WHERE case_id = $1 "
                           "AND action = 'progress_heard'", case_id)
    assert len(heard) == 1 and heard[0]["actor_id"] is None
    # No case was opened for the self-service call, and it never queued.
    row = await db.fetchrow("SELECT case_id, entered_queue_at FROM calls "
                            "WHERE channel_id = $1", channel)
    assert row["case_id"] is None and row["entered_queue_at"] is None


async def test_three_wrong_codes_end_with_a_goodbye_and_hang_up(
        stack: Stack, db: asyncpg.Connection) -> None:
    case_id, case_no, code = await _assigned_case(db)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    # Each try: the case number and # (during the question or the "not right" message),
    # the wrong code, a pause while it is checked.
    one_try = f"{case_no}#ww{wrong}ww"
    _, seen, then = await _call(stack, db, f"1wwwwww{one_try * 3}", timeout=120)
    assert seen == ["not_found/1", "not_found/2", "not_found/3", "gave_up/3"], seen
    assert then > 3, then  # "not right" and the goodbye, then the hang-up
    assert not await db.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 "
                                 "AND action = 'progress_heard'", case_id)
    assert await db.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 "
                             "AND action = 'progress_code_wrong'", case_id) == 3

"""No caller is lost when the call-control service dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import asyncpg
import pytest

from db import cases as case_store
from tests.conftest import VAR, Stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean")]


async def test_call_control_killed_callers_hear_fallback_and_waiting_calls_keep_place(
    stack: Stack, db: asyncpg.Connection, desk
) -> None:
    stack.call("12345", "13811112222")
    await wait_until(db, "SELECT count(*) FROM calls WHERE state = 'waiting'")
    before = await db.fetchrow("SELECT * FROM calls WHERE state = 'waiting'")
    stack.call("12345", "13811113333")
    await wait_until(db, "SELECT count(*) = 2 FROM calls WHERE state = 'waiting'")
    leaving = await db.fetchrow("SELECT * FROM calls WHERE state = 'waiting' AND id <> $1",
                                before["id"])
    old_pid = await db.fetchval("SELECT pid FROM service_status WHERE name = 'ivr'")
    log_size = (VAR / "log" / "ivr.log").stat().st_size

    # Freeze the supervisor so it cannot restart the service, then kill -9 the service.
    os.kill(stack.proc.pid, signal.SIGSTOP)
    try:
        os.kill(old_pid, signal.SIGKILL)
        await asyncio.sleep(1.5)
        # A waiting caller gives up while nobody watches: no event will say so.
        async with stack.ari() as ari:
            await ari.channel(leaving["channel_id"]).hangup()
        # A caller arriving now is not left in silence: the dialplan's fallback answers.
        stack.call("63160000", "13833334444", "--hold", "20")
        deadline = time.monotonic() + 20
        contexts: set[str] = set()
        async with stack.ari() as ari:
            while time.monotonic() < deadline and "hotline-fallback" not in contexts:
                contexts = {c["dialplan"]["context"] for c in await ari.channels()}
                await asyncio.sleep(0.2)
        assert "hotline-fallback" in contexts
    finally:
        os.kill(stack.proc.pid, signal.SIGCONT)

    # The supervisor starts the service again; it reconnects and reconciles.
    await wait_until(db, "SELECT pid <> $1 AND details->>'ari_connected' = 'true' "
                         "FROM service_status WHERE name = 'ivr'", old_pid, timeout=40)
    await wait_until(db, "SELECT state = 'ended' FROM calls WHERE id = $1", leaving["id"])
    assert await db.fetchval("SELECT end_reason FROM calls WHERE id = $1", leaving["id"]) \
        == "caller_hangup"
    after = await db.fetchrow("SELECT * FROM calls WHERE id = $1", before["id"])
    assert after["state"] == "waiting"
    assert after["entered_queue_at"] == before["entered_queue_at"]
    assert await db.fetchval("SELECT count(*) FROM calls WHERE dialled_number = '63160000' "
                             "AND arrived_at > $1", before["arrived_at"]) == 0

    # ...and the waiting caller is served by the next ready agent, bridged in Asterisk.
    a1 = await desk("agent1")
    await a1.set_state("ready")
    await a1.expect("connected", call__call_id=str(before["id"]))
    row = await db.fetchrow("SELECT * FROM calls WHERE id = $1", before["id"])
    async with stack.ari() as ari:
        bridge = {b["id"]: b for b in await ari.bridges()}[row["bridge_id"]]
    assert row["channel_id"] in bridge["channels"]
    with (VAR / "log" / "ivr.log").open() as f:
        f.seek(log_size)
        assert "Traceback" not in f.read()

    # The caller who reached the fallback left a voice message: it became a case, found
    # by the caller's number, and is on the callback worklist.
    case_id = await wait_until(
        db, """SELECT c.id FROM cases c JOIN calls k ON k.id = c.call_id
               JOIN worklist w ON w.call_id = k.id
               WHERE k.channel_id LIKE 'fallback-%' AND w.kind = 'voice_message'
                 AND c.created_at > $1 ORDER BY c.id DESC LIMIT 1""",
        before["arrived_at"], timeout=90)
    found = await case_store.find_by_phone(db, stack.keyring(), "13833334444")
    assert case_id in {r["id"] for r in found}

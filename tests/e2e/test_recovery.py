"""No caller is lost when the call-control service dies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from db import cases as case_store
from hotline.asterisk import AsteriskInstance, locate
from tests.conftest import SIP_TARGET, VAR, Stack, wait_until
from tests.sip import citizen_call

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
        stack.call("63160000", "13833334444", "--hold", "12")
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
    # Call control never saw the caller who reached the fallback (only their message is
    # imported, as a call of its own, below).
    assert await db.fetchval("SELECT count(*) FROM calls WHERE dialled_number = '63160000' "
                             "AND arrived_at > $1 AND channel_id NOT LIKE 'fallback-%'",
                             before["arrived_at"]) == 0

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
    # The message's call has the number dialled, and the caller's number is not in it.
    fallback = await db.fetchrow("SELECT * FROM calls WHERE case_id = $1", case_id)
    assert fallback["dialled_number"] == "63160000"
    assert "13833334444" not in str(dict(fallback))


async def test_calls_cut_by_an_asterisk_crash_are_owed_a_call_back_first(
    stack: Stack, db: asyncpg.Connection, desk, tmp_path: Path
) -> None:
    """kill -9 of Asterisk with one caller talking and two waiting: `hotline run` starts it
    again and call control reconciles; all three calls end as lost by the system (not the
    callers' hang-ups), head the callback worklist in the order they arrived, and count
    apart in the queue log."""
    since = time.time() - 1
    # Citizens from the carrier (SIPp on the demo trunk), as in production.
    callers = [await citizen_call(SIP_TARGET, "12345", caller="13811115551", hold=120,
                                  log_dir=tmp_path / "talking")]
    await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE state = 'waiting' "
                         "AND arrived_at >= to_timestamp($1)", since)
    agent = await desk("agent1")
    await agent.set_state("ready")
    await wait_until(db, "SELECT count(*) = 1 FROM calls WHERE state = 'connected' "
                         "AND arrived_at >= to_timestamp($1)", since)
    for n, caller in enumerate(("13811115552", "13811115553"), start=1):
        callers.append(await citizen_call(SIP_TARGET, "12345", caller=caller, hold=120,
                                          log_dir=tmp_path / f"waiting{n}"))
        await wait_until(db, "SELECT count(*) = $2 FROM calls WHERE state = 'waiting' "
                             "AND arrived_at >= to_timestamp($1)", since, n)
    # (A message an earlier test left at the fallback may be imported meanwhile: a call
    # of its own, not one of these.)
    calls = await db.fetch("SELECT id, state FROM calls WHERE arrived_at >= to_timestamp($1) "
                           "AND channel_id NOT LIKE 'fallback-%' ORDER BY arrived_at", since)
    ids = [c["id"] for c in calls]
    assert [c["state"] for c in calls] == ["connected", "waiting", "waiting"]

    asterisk = AsteriskInstance(locate(), VAR)
    os.kill(int((asterisk.host_base / "run" / "asterisk.pid").read_text()), signal.SIGKILL)

    await wait_until(db, "SELECT count(*) = 3 FROM calls WHERE state = 'ended' "
                         "AND id = ANY($1)", ids, timeout=60)
    ended = await db.fetch("SELECT end_reason FROM calls WHERE id = ANY($1)", ids)
    assert [r["end_reason"] for r in ended] == ["system_lost"] * 3
    assert await db.fetchval(
        "SELECT count(*) FROM queue_log WHERE event = 'SYSTEMLOST' AND call_id = ANY($1)",
        ids) == 3
    assert await db.fetchval(
        "SELECT count(*) FROM queue_log WHERE event IN ('ABANDON', 'COMPLETECALLER') "
        "AND call_id = ANY($1)", ids) == 0
    status, body = await agent.request("GET", "/api/worklist")
    assert status == 200
    items = body["items"]
    lost = [i for i in items if "系统故障" in (i.get("reason_text") or "")]
    assert items[:len(lost)] == lost  # lost calls come first (an earlier run's too)...
    ours = [str(i) for i in ids]
    assert [i["call_id"] for i in lost if i["call_id"] in ours] == ours  # ...in order
    for sipp in callers:  # their lines died with Asterisk: end the SIPp runs
        await sipp.stop()
